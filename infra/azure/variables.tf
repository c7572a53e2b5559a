variable "name_prefix" {
  description = "Prefix of the resource names of this deployment."
  type        = string
  default     = "train"
}

variable "location" {
  description = "Azure region of the function app and its resources."
  type        = string
  default     = "eastus"
}

variable "storage_account_name" {
  description = "Globally unique name of the function app's storage account (3-24 lower-case letters and digits)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "3-24 lower-case letters and digits."
  }
}

variable "key_vault_name" {
  description = "Globally unique name of the Key Vault holding the deployment's secrets (3-24 characters)."
  type        = string
}

variable "job_prefix" {
  description = "TRAIN_JOB_PREFIX: prefix of Azure ML job names, which the event subscription filters on."
  type        = string
  default     = "train"
}

variable "ml_workspace_name" {
  description = "The Azure ML workspace jobs run in."
  type        = string
}

variable "ml_workspace_resource_group_name" {
  description = "Resource group of the Azure ML workspace."
  type        = string
}

variable "ml_storage_account_id" {
  description = "Resource ID of the workspace's default storage account, where checkpoints are written and listed from."
  type        = string
}

variable "ml_compute" {
  description = "TRAIN_AZUREML_COMPUTE: a compute cluster of the workspace; empty for serverless compute."
  type        = string
  default     = ""
}

variable "train_store" {
  description = "TRAIN_STORE. There is no Azure-native store yet: dynamodb://<table> or firestore://<prefix>, with the store's credentials as Key Vault secrets (secret_app_settings)."
  type        = string
}

variable "secret_app_settings" {
  description = "App settings resolved from Key Vault secrets at run time: setting name → secret name (e.g. AWS_SECRET_ACCESS_KEY → aws-secret-access-key)."
  type        = map(string)
  default     = {}
}

variable "key_vault_admin_ip_rules" {
  description = "Addresses (CIDR) allowed to reach the Key Vault besides the function app, e.g. where operators set secrets from."
  type        = list(string)
  default     = []
}

variable "subscribe_events" {
  description = "Create the Event Grid subscription. Event Grid checks that the function exists: apply with false, publish the app, then apply with true."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { service = "train" }
}

variable "webhook_secret_name" {
  description = "Key Vault secret holding the HMAC key webhook deliveries are signed with (TRAIN_WEBHOOK_SECRET)."
  type        = string
  default     = "webhook-signing"
}
