# The Train function app on Azure: one Linux Function App (Python 3.11, consumption plan) serving
# the HTTP API, the Azure ML Event Grid trigger and its webhook variant, and the sweeper's timer
# (functions/azure/function_app.py). It runs as its system-assigned managed identity; every secret
# it reads is a Key Vault reference, and its host storage is reached with that identity (no keys).

data "azurerm_client_config" "current" {}

data "azurerm_machine_learning_workspace" "ml" {
  name                = var.ml_workspace_name
  resource_group_name = var.ml_workspace_resource_group_name
}

resource "azurerm_resource_group" "train" {
  name     = "${var.name_prefix}-functions"
  location = var.location
  tags     = var.tags
}

resource "azurerm_log_analytics_workspace" "train" {
  name                = "${var.name_prefix}-logs"
  resource_group_name = azurerm_resource_group.train.name
  location            = azurerm_resource_group.train.location
  sku                 = "PerGB2018"
  retention_in_days   = 90
  tags                = var.tags
}

resource "azurerm_application_insights" "train" {
  name                = "${var.name_prefix}-insights"
  resource_group_name = azurerm_resource_group.train.name
  location            = azurerm_resource_group.train.location
  workspace_id        = azurerm_log_analytics_workspace.train.id
  application_type    = "other"
  # Telemetry is accepted only with an Entra ID token (the app's identity), never the bare key.
  local_authentication_disabled = true
  tags                          = var.tags
}

resource "azurerm_storage_account" "functions" {
  #checkov:skip=CKV_AZURE_35:A consumption-plan function app reaches its host storage over the public endpoint (no VNet integration on this plan); access needs Entra ID, shared keys are off.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the consumption plan needs the public endpoint; shared keys are disabled and only RBAC grants access.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need VNet integration, which the consumption plan does not have.
  #checkov:skip=CKV2_AZURE_1:Encrypted with Microsoft-managed keys plus infrastructure encryption; it holds the host's leases and keys and dead-lettered events, no customer data.
  #checkov:skip=CKV_AZURE_33:No queues are used (no queue triggers); Storage Analytics queue logging would log nothing.
  name                              = var.storage_account_name
  resource_group_name               = azurerm_resource_group.train.name
  location                          = azurerm_resource_group.train.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "GZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  shared_access_key_enabled         = false
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  public_network_access_enabled     = true

  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
  }

  network_rules {
    default_action = "Allow"
    bypass         = ["AzureServices", "Logging", "Metrics"]
  }

  tags = var.tags
}

# Where Event Grid puts events it could not deliver after its retries.
resource "azurerm_storage_container" "dead_letter" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is set on the account's diagnostic settings, not per container.
  name                  = "eventgrid-dead-letter"
  storage_account_id    = azurerm_storage_account.functions.id
  container_access_type = "private"
}

resource "azurerm_service_plan" "train" {
  #checkov:skip=CKV_AZURE_212:Consumption (Y1) plans scale out on demand; a minimum instance count applies to dedicated and premium plans only.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is a premium-plan feature; the consumption plan is the serverless choice here, with the sweeper reconciling anything missed during an outage.
  name                = "${var.name_prefix}-plan"
  resource_group_name = azurerm_resource_group.train.name
  location            = azurerm_resource_group.train.location
  os_type             = "Linux"
  sku_name            = "Y1"
  tags                = var.tags
}

locals {
  key_vault_uri = "https://${var.key_vault_name}.vault.azure.net/"
  # TRAIN_* settings (core/config.py); the Azure ML workspace the backend submits to.
  train_settings = {
    TRAIN_STORE                   = var.train_store
    TRAIN_BACKENDS                = "azure-ml"
    TRAIN_JOB_PREFIX              = var.job_prefix
    TRAIN_AZUREML_SUBSCRIPTION_ID = data.azurerm_client_config.current.subscription_id
    TRAIN_AZUREML_RESOURCE_GROUP  = var.ml_workspace_resource_group_name
    TRAIN_AZUREML_WORKSPACE       = var.ml_workspace_name
    TRAIN_AZUREML_COMPUTE         = var.ml_compute
    TRAIN_SECRETS                 = "azure-keyvault://${var.key_vault_name}.vault.azure.net"
    # Resolved by the platform from Key Vault with the app's identity, like secret_app_settings.
    TRAIN_WEBHOOK_SECRET = "@Microsoft.KeyVault(SecretUri=${local.key_vault_uri}secrets/${var.webhook_secret_name}/)"
  }
  # Resolved by the platform with the app's identity; the values never appear in Terraform state.
  secret_settings = {
    for setting, secret in var.secret_app_settings :
    setting => "@Microsoft.KeyVault(SecretUri=${local.key_vault_uri}secrets/${secret}/)"
  }
}

resource "azurerm_linux_function_app" "train" {
  #checkov:skip=CKV_AZURE_221:The HTTP API is Train's public endpoint; the webhook needs a function key and the Event Grid trigger the system key.
  name                          = "${var.name_prefix}-func"
  resource_group_name           = azurerm_resource_group.train.name
  location                      = azurerm_resource_group.train.location
  service_plan_id               = azurerm_service_plan.train.id
  storage_account_name          = azurerm_storage_account.functions.name
  storage_uses_managed_identity = true
  https_only                    = true
  public_network_access_enabled = true
  functions_extension_version   = "~4"
  builtin_logging_enabled       = false
  client_certificate_mode       = "Optional"

  identity {
    type = "SystemAssigned"
  }

  site_config {
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    ftps_state                             = "Disabled"
    http2_enabled                          = true
    application_insights_connection_string = azurerm_application_insights.train.connection_string

    application_stack {
      python_version = "3.11"
    }
  }

  app_settings = merge(local.train_settings, local.secret_settings, {
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD"
    PYTHON_ENABLE_INIT_INDEXING               = "1"
  })

  tags = var.tags
}
