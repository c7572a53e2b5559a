# The sweeper runs every few minutes: Cloud Scheduler POSTs to its URL with an OIDC token of
# the scheduler account (the only invoker). A failed sweep (5xx) is retried by the scheduler.
# To schedule through Pub/Sub instead, deploy entry point `sweeper_pubsub` with an event
# trigger on the scheduler's topic (functions/gcp/main.py).

resource "google_cloud_scheduler_job" "sweep" {
  name             = "${var.name}-sweep"
  project          = var.project
  region           = var.region
  description      = "Train sweeper: expire, reconcile, finish crashed submissions"
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "10s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sweeper.service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{\"sweep\": true}")

    oidc_token {
      service_account_email = google_service_account.function["scheduler"].email
      audience              = google_cloudfunctions2_function.sweeper.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes_sweeper]
}
