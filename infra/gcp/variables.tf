variable "project" {
  description = "The Google Cloud project Train is deployed in (and where Vertex AI runs its jobs)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler and the Vertex AI jobs (TRAIN_VERTEX_LOCATION)."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region or a multi-region such as nam5)."
  type        = string
  default     = "nam5"
}

variable "name" {
  description = "Prefix of every resource name; several deployments can share a project."
  type        = string
  default     = "train"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{0,15}$."
  }
}

variable "job_prefix" {
  description = "TRAIN_JOB_PREFIX: prefix of the native job names Train creates."
  type        = string
  default     = "train"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.job_prefix))
    error_message = "job_prefix must match ^[a-z][a-z0-9-]{0,15}$ (core/config.py)."
  }
}

variable "collection_prefix" {
  description = "Prefix of the Firestore collections (TRAIN_STORE=firestore://<prefix>); no '/'."
  type        = string
  default     = "train_"

  validation {
    condition     = !strcontains(var.collection_prefix, "/")
    error_message = "collection_prefix may not contain '/'."
  }
}

variable "source_archive" {
  description = "The functions' source zip built by infra/gcp/build_source.sh."
  type        = string
  default     = "../../build/gcp/source.zip"
}

variable "sweep_schedule" {
  description = "Cron schedule of the sweeper (Cloud Scheduler, UTC)."
  type        = string
  default     = "*/5 * * * *"
}

variable "webhook_secret_id" {
  description = "Secret Manager secret holding the HMAC key webhook deliveries are signed with (TRAIN_WEBHOOK_SECRET)."
  type        = string
  default     = "train-webhook-signing"
}
