# Vertex AI job state without a poller (SPEC §7): a Cloud Logging sink sends the service log
# entries of custom jobs to a Pub/Sub topic; the events function's Eventarc trigger reads it.

resource "google_pubsub_topic" "vertex_events" {
  #checkov:skip=CKV_GCP_83:messages are Vertex AI service log entries (job ids and state notes, no user data); Google-managed encryption at rest
  name                       = "${var.name}-vertex-events"
  project                    = var.project
  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

resource "google_logging_project_sink" "vertex_jobs" {
  name                   = "${var.name}-vertex-jobs"
  project                = var.project
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.vertex_events.id}"
  filter                 = "resource.type=\"ml_job\" AND resource.labels.task_name=\"service\""
  unique_writer_identity = true
}

# The sink writes as its own identity, which may publish to this topic and nothing else.
resource "google_pubsub_topic_iam_member" "sink_publishes" {
  project = var.project
  topic   = google_pubsub_topic.vertex_events.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.vertex_jobs.writer_identity
}
