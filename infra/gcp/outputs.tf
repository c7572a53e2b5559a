output "api_url" {
  description = "The Train HTTP API (TRAIN_URL for the CLI)."
  value       = google_cloudfunctions2_function.http.service_config[0].uri
}

output "vertex_events_topic" {
  value = google_pubsub_topic.vertex_events.id
}

output "log_sink_writer_identity" {
  value = google_logging_project_sink.vertex_jobs.writer_identity
}

output "staging_bucket" {
  value = "gs://${google_storage_bucket.staging.name}"
}
