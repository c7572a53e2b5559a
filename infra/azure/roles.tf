# Least privilege: each identity gets the one built-in role its work needs, on the narrowest scope.

locals {
  function_principal = azurerm_linux_function_app.train.identity[0].principal_id
  dead_letter_scope  = "${azurerm_storage_account.functions.id}/blobServices/default/containers/${azurerm_storage_container.dead_letter.name}"
}

# Submit, read and cancel command jobs and register Environment versions; no compute or workspace changes.
resource "azurerm_role_assignment" "function_ml" {
  scope                = data.azurerm_machine_learning_workspace.ml.id
  role_definition_name = "AzureML Data Scientist"
  principal_id         = local.function_principal
}

# List checkpoints the jobs wrote to the workspace's default datastore.
resource "azurerm_role_assignment" "function_checkpoints" {
  scope                = var.ml_storage_account_id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = local.function_principal
}

# Read the deployment's secrets (Key Vault references in app settings); no write, no list of keys.
resource "azurerm_role_assignment" "function_secrets" {
  scope                = azurerm_key_vault.train.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = local.function_principal
}

# The Functions host's own storage (leases, timer state, keys) through its identity.
resource "azurerm_role_assignment" "function_host_storage" {
  scope                = azurerm_storage_account.functions.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = local.function_principal
}

# Send telemetry to Application Insights with Entra ID (local authentication is off).
resource "azurerm_role_assignment" "function_telemetry" {
  scope                = azurerm_application_insights.train.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = local.function_principal
}

# Event Grid writes undeliverable events into the dead-letter container only.
resource "azurerm_role_assignment" "topic_dead_letter" {
  scope                = local.dead_letter_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_eventgrid_system_topic.ml.identity[0].principal_id
}
