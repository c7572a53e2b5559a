# Secrets the deployment needs (the job store's credentials while TRAIN_STORE is DynamoDB or
# Firestore, registry passwords...). Terraform creates no secret, so no value lands in its state:
# operators set them with `az keyvault secret set` and name them in var.secret_app_settings.

resource "azurerm_key_vault" "train" {
  #checkov:skip=CKV2_AZURE_32:Private endpoints need VNet integration, which the consumption plan does not have; the firewall admits only the app's outbound addresses and the listed admin ranges.
  name                       = var.key_vault_name
  resource_group_name        = azurerm_resource_group.train.name
  location                   = azurerm_resource_group.train.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  enable_rbac_authorization  = true
  purge_protection_enabled   = true
  soft_delete_retention_days = 90

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = concat([for ip in azurerm_linux_function_app.train.possible_outbound_ip_address_list : "${ip}/32"], var.key_vault_admin_ip_rules)
  }

  tags = var.tags
}
