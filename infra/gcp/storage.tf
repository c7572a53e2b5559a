# Two buckets: the functions' source archive, and Vertex AI's staging bucket (each job's
# base_output_directory, hence its checkpoints: TRAIN_VERTEX_STAGING_BUCKET).

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:holds only the deployment's source archive, written by Terraform; Cloud Audit Logs record access
  name                        = "${var.project}-${var.name}-source"
  project                     = var.project
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "source" {
  # A new name per content, so a changed archive redeploys the functions.
  name   = "source-${filemd5(var.source_archive)}.zip"
  bucket = google_storage_bucket.source.name
  source = var.source_archive
}

resource "google_storage_bucket" "staging" {
  #checkov:skip=CKV_GCP_62:checkpoints and outputs of training jobs; Cloud Audit Logs (data access) record reads, bucket access logs would only duplicate them
  name                        = "${var.project}-${var.name}-staging"
  project                     = var.project
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    # Old versions of overwritten checkpoints.
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}
