output "function_app_name" {
  value = azurerm_linux_function_app.train.name
}

output "api_url" {
  description = "Train's HTTP API (routes at the root: host.json sets an empty routePrefix)."
  value       = "https://${azurerm_linux_function_app.train.default_hostname}"
}

output "function_principal_id" {
  value = azurerm_linux_function_app.train.identity[0].principal_id
}

output "key_vault_uri" {
  value = azurerm_key_vault.train.vault_uri
}

output "dead_letter_container" {
  value = local.dead_letter_scope
}
