# Terraform and provider versions, pinned: `terraform init` installs exactly these.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 6.14.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
