# One service account per function, each granted only what its code calls, plus the identities
# that invoke the private functions, the one Cloud Build uses, and the one Vertex AI jobs run as.
# No primitive role (owner, editor, viewer) anywhere.

locals {
  accounts = {
    http      = "Train HTTP API function"
    events    = "Train Vertex AI events function"
    sweeper   = "Train sweeper function"
    trigger   = "Eventarc trigger delivering log-sink messages to the events function"
    scheduler = "Cloud Scheduler identity invoking the sweeper"
    build     = "Cloud Build identity building the functions"
    job       = "Identity Vertex AI training jobs run as"
  }

  # Project-wide grants (these services have no narrower resource to grant on).
  project_roles = {
    "http-datastore"       = { account = "http", role = "roles/datastore.user" }      # jobs, keys, claims
    "http-aiplatform"      = { account = "http", role = "roles/aiplatform.user" }     # create, get, list, cancel custom jobs
    "http-logs"            = { account = "http", role = "roles/logging.viewer" }      # GET /v1/jobs/{id}/logs (entries:list)
    "events-datastore"     = { account = "events", role = "roles/datastore.user" }    # apply status updates
    "events-aiplatform"    = { account = "events", role = "roles/aiplatform.user" }   # GetCustomJob; resubmit preempted attempts
    "sweeper-datastore"    = { account = "sweeper", role = "roles/datastore.user" }
    "sweeper-aiplatform"   = { account = "sweeper", role = "roles/aiplatform.user" }  # re-read, stop expired, finish submissions
    "build-logs"           = { account = "build", role = "roles/logging.logWriter" }
    "build-artifacts"      = { account = "build", role = "roles/artifactregistry.writer" }
    "job-logs"             = { account = "job", role = "roles/logging.logWriter" }
    # {secret: name} env values and the webhook signing key, read from Secret Manager
    "http-secrets"    = { account = "http", role = "roles/secretmanager.secretAccessor" }
    "events-secrets"  = { account = "events", role = "roles/secretmanager.secretAccessor" }
    "sweeper-secrets" = { account = "sweeper", role = "roles/secretmanager.secretAccessor" }
  }
}

resource "google_service_account" "function" {
  for_each     = local.accounts
  project      = var.project
  account_id   = "${var.name}-${each.key}"
  display_name = each.value
}

resource "google_project_iam_member" "grant" {
  for_each = local.project_roles
  project  = var.project
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.function[each.value.account].email}"
}

# Checkpoints: the HTTP API lists them, the jobs write them.
resource "google_storage_bucket_iam_member" "http_reads_checkpoints" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function["http"].email}"
}

resource "google_storage_bucket_iam_member" "job_writes_outputs" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.function["job"].email}"
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function["build"].email}"
}

# Submitting a custom job that runs as the job account needs actAs on that account only.
resource "google_service_account_iam_member" "submitters_act_as_job" {
  for_each           = toset(["http", "sweeper"])
  service_account_id = google_service_account.function["job"].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.value].email}"
}

# Pub/Sub signs the push requests of the Eventarc subscription as the trigger account.
resource "google_service_account_iam_member" "pubsub_signs_as_trigger" {
  service_account_id = google_service_account.function["trigger"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# Who may invoke each function (gen2 functions are Cloud Run services of the same name).
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_events" {
  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.events.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.function["trigger"].email}"
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_sweeper" {
  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.sweeper.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.function["scheduler"].email}"
}

# The HTTP API is public: every route but /health and /openapi.json checks an API key itself.
resource "google_cloud_run_v2_service_iam_member" "anyone_invokes_http" {
  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
