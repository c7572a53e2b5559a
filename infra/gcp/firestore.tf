# The job store: Firestore in native mode, the (default) database that FirestoreJobStore's client
# opens. Collections are named <collection_prefix><name> (docs/firestore-layout.md).

resource "google_firestore_database" "default" {
  project                           = var.project
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.enabled]
}

locals {
  # core/stores/firestore_layout.py JOB_INDEXES, in the same order: one composite index per
  # combination of the list filters (account_id first, id descending), then the active index the
  # sweeper reads. tests/functions/test_gcp_infra.py checks that the two lists agree.
  job_indexes = [
    [["account_id", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["backend", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["project", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["backend", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["project", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["backend", "ASCENDING"], ["project", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["backend", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["project", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["backend", "ASCENDING"], ["project", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["backend", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["project", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["backend", "ASCENDING"], ["project", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["account_id", "ASCENDING"], ["status", "ASCENDING"], ["backend", "ASCENDING"], ["project", "ASCENDING"], ["name", "ASCENDING"], ["id", "DESCENDING"]],
    [["active", "ASCENDING"], ["id", "ASCENDING"]],
  ]
}

resource "google_firestore_index" "jobs" {
  for_each    = { for position, fields in local.job_indexes : tostring(position) => fields }
  project     = var.project
  database    = google_firestore_database.default.name
  collection  = "${var.collection_prefix}jobs"
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value[0]
      order      = fields.value[1]
    }
  }
}

# Idempotency claims carry expire_at; Firestore deletes each some time (up to ~a day) after it.
resource "google_firestore_field" "idempotency_ttl" {
  project    = var.project
  database   = google_firestore_database.default.name
  collection = "${var.collection_prefix}idempotency"
  field      = "expire_at"

  ttl_config {}
}

# The whole job record as a JSON string: nothing filters on it, so it is kept out of the
# automatic single-field indexes (an empty index_config).
resource "google_firestore_field" "job_record_unindexed" {
  project    = var.project
  database   = google_firestore_database.default.name
  collection = "${var.collection_prefix}jobs"
  field      = "record"

  index_config {}
}
