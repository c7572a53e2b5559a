# Azure ML run status → the function: an Event Grid system topic on the workspace and one
# subscription taking only the two run events of Train's jobs (runId starts with the job prefix),
# delivered to the Event Grid trigger `azureml_events`. Undeliverable events go to the dead-letter
# container, written with the topic's own identity.

resource "azurerm_eventgrid_system_topic" "ml" {
  name                = "${var.name_prefix}-azureml-events"
  resource_group_name = var.ml_workspace_resource_group_name
  location            = data.azurerm_machine_learning_workspace.ml.location
  source_resource_id  = data.azurerm_machine_learning_workspace.ml.id
  topic_type          = "Microsoft.MachineLearningServices.Workspaces"

  identity {
    type = "SystemAssigned"
  }

  tags = var.tags
}

resource "azurerm_eventgrid_system_topic_event_subscription" "runs" {
  count                 = var.subscribe_events ? 1 : 0
  name                  = "${var.name_prefix}-run-status"
  system_topic          = azurerm_eventgrid_system_topic.ml.name
  resource_group_name   = var.ml_workspace_resource_group_name
  event_delivery_schema = "EventGridSchema"

  included_event_types = [
    "Microsoft.MachineLearningServices.RunStatusChanged",
    "Microsoft.MachineLearningServices.RunCompleted",
  ]

  advanced_filter {
    string_begins_with {
      key    = "data.runId"
      values = ["${var.job_prefix}-"]
    }
  }

  azure_function_endpoint {
    function_id                       = "${azurerm_linux_function_app.train.id}/functions/azureml_events"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.functions.id
    storage_blob_container_name = azurerm_storage_container.dead_letter.name
  }

  depends_on = [azurerm_role_assignment.topic_dead_letter]
}
