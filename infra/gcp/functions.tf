# The three Cloud Functions (gen2), one source archive, one service account each. Entry points
# are in functions/gcp/main.py; their settings are the TRAIN_* variables of core/config.py.

locals {
  environment = {
    TRAIN_STORE                  = "firestore://${var.collection_prefix}"
    TRAIN_BACKENDS               = "vertex-ai"
    TRAIN_JOB_PREFIX             = var.job_prefix
    TRAIN_VERTEX_PROJECT         = var.project
    TRAIN_VERTEX_LOCATION        = var.region
    TRAIN_VERTEX_STAGING_BUCKET  = "gs://${google_storage_bucket.staging.name}"
    TRAIN_VERTEX_SERVICE_ACCOUNT = google_service_account.function["job"].email
    TRAIN_SECRETS                = "gcp-secretmanager://${var.project}"
  }
}

resource "google_cloudfunctions2_function" "http" {
  #checkov:skip=CKV_GCP_124:the public Train API; every route but /health and /openapi.json authenticates an API key
  name        = "${var.name}-http"
  project     = var.project
  location    = var.region
  description = "Train HTTP API (core.api route table)"

  build_config {
    runtime         = "python311"
    entry_point     = "http"
    service_account = google_service_account.function["build"].id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["http"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = "512M"
    timeout_seconds                  = 60
    min_instance_count               = 0
    max_instance_count               = 20
    max_instance_request_concurrency = 1
    environment_variables            = local.environment
    secret_environment_variables {
      key        = "TRAIN_WEBHOOK_SECRET"
      project_id = var.project
      secret     = var.webhook_secret_id
      version    = "latest"
    }
  }

  depends_on = [google_project_service.enabled, google_project_iam_member.grant]
}

resource "google_cloudfunctions2_function" "events" {
  name        = "${var.name}-vertex-events"
  project     = var.project
  location    = var.region
  description = "Vertex AI custom job state changes from the log sink (Pub/Sub CloudEvents)"

  build_config {
    runtime         = "python311"
    entry_point     = "vertex_events"
    service_account = google_service_account.function["build"].id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["events"].email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = "512M"
    timeout_seconds                  = 60
    min_instance_count               = 0
    max_instance_count               = 10
    max_instance_request_concurrency = 1
    environment_variables            = local.environment
    secret_environment_variables {
      key        = "TRAIN_WEBHOOK_SECRET"
      project_id = var.project
      secret     = var.webhook_secret_id
      version    = "latest"
    }
  }

  # The Eventarc trigger: the function raises on retryable errors, so failed deliveries are
  # retried (with backoff, up to 7 days); malformed and foreign messages are acknowledged.
  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.vertex_events.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.function["trigger"].email
  }

  depends_on = [google_project_service.enabled, google_project_iam_member.grant]
}

resource "google_cloudfunctions2_function" "sweeper" {
  name        = "${var.name}-sweeper"
  project     = var.project
  location    = var.region
  description = "Train sweeper: expire, reconcile, finish submissions (Cloud Scheduler, HTTP POST)"

  build_config {
    runtime         = "python311"
    entry_point     = "sweeper"
    service_account = google_service_account.function["build"].id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["sweeper"].email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = "512M"
    timeout_seconds                  = 300
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    environment_variables            = local.environment
    secret_environment_variables {
      key        = "TRAIN_WEBHOOK_SECRET"
      project_id = var.project
      secret     = var.webhook_secret_id
      version    = "latest"
    }
  }

  depends_on = [google_project_service.enabled, google_project_iam_member.grant]
}
