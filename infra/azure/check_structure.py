"""Structural checks of infra/azure that checkov does not make: the Event Grid subscription takes
exactly Azure ML's two run events of Train's jobs and dead-letters what it cannot deliver, it
feeds the Event Grid trigger that functions/azure/function_app.py defines, the app's settings are
Train's settings, and each identity holds only the roles it needs.

Run by infra/check_azure.sh with the checker's own interpreter (bc-python-hcl2 comes with checkov);
reads the repository's files as text, imports nothing of Train. Exits 1 listing every problem.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EVENT_TYPES = {"Microsoft.MachineLearningServices.RunStatusChanged", "Microsoft.MachineLearningServices.RunCompleted"}
# Each role assignment: (role, scope expression). Anything else, or any broad role, is a finding.
ROLES = {
    "function_ml": ("AzureML Data Scientist", "${data.azurerm_machine_learning_workspace.ml.id}"),
    "function_checkpoints": ("Storage Blob Data Reader", "${var.ml_storage_account_id}"),
    "function_secrets": ("Key Vault Secrets User", "${azurerm_key_vault.train.id}"),
    "function_host_storage": ("Storage Blob Data Owner", "${azurerm_storage_account.functions.id}"),
    "function_telemetry": ("Monitoring Metrics Publisher", "${azurerm_application_insights.train.id}"),
    "topic_dead_letter": ("Storage Blob Data Contributor", "${local.dead_letter_scope}"),
}
BROAD_ROLES = {"Owner", "Contributor", "User Access Administrator", "Key Vault Administrator",
               "AzureML Compute Operator", "Storage Account Contributor"}


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """Every resource of the configuration: type → name → attributes."""
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(HERE.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for entry in parsed.get("resource", []):
            for kind, named in entry.items():
                resources.setdefault(kind, {}).update(named)
    return resources


def one(block: dict[str, Any], key: str) -> Any:
    """The value of ``key`` in a parsed block (bc-python-hcl2 wraps each in a list)."""
    value = block.get(key)
    return value[0] if isinstance(value, list) and value else value


def function_names() -> dict[str, str]:
    """Function name → trigger decorator, from functions/azure/function_app.py."""
    text = (ROOT / "functions" / "azure" / "function_app.py").read_text()
    pairs = re.findall(r'@app\.function_name\("([^"]+)"\)\s*\n@app\.(\w+)\(', text)
    return dict(pairs)


def settings_fields() -> set[str]:
    """``TRAIN_*`` names of the fields of core/config.py's ``Settings``."""
    tree = ast.parse((ROOT / "core" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            return {f"TRAIN_{s.target.id.upper()}" for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    return set()


def check(resources: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    problems: list[str] = []

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    (topic,) = resources["azurerm_eventgrid_system_topic"].values()
    expect(one(topic, "topic_type") == "Microsoft.MachineLearningServices.Workspaces",
           "the system topic is not on an Azure ML workspace")
    expect(one(topic, "source_resource_id") == "${data.azurerm_machine_learning_workspace.ml.id}",
           "the system topic's source is not the workspace")

    (subscription,) = resources["azurerm_eventgrid_system_topic_event_subscription"].values()
    types = one(subscription, "included_event_types") or []
    expect(set(types) == EVENT_TYPES and len(types) == 2,
           f"the subscription must take exactly {sorted(EVENT_TYPES)}, not {types}")
    dead_letter = one(subscription, "storage_blob_dead_letter_destination") or {}
    expect(one(dead_letter, "storage_blob_container_name") == "${azurerm_storage_container.dead_letter.name}",
           "the subscription has no dead-letter container")
    expect(one(one(subscription, "dead_letter_identity") or {}, "type") == "SystemAssigned",
           "dead-lettering does not use the topic's managed identity")
    prefix = one(one(one(subscription, "advanced_filter") or {}, "string_begins_with") or {}, "key")
    expect(prefix == "data.runId", "the subscription does not filter on Train's job-name prefix (data.runId)")
    endpoint = one(one(subscription, "azure_function_endpoint") or {}, "function_id") or ""
    target = endpoint.rsplit("/functions/", 1)[-1]
    expect(function_names().get(target) == "event_grid_trigger",
           f"the subscription delivers to '{target}', which is not an Event Grid trigger of function_app.py")
    expect(one(subscription, "event_delivery_schema") == "EventGridSchema", "delivery schema is not EventGridSchema")

    (app,) = resources["azurerm_linux_function_app"].values()
    site = one(app, "site_config") or {}
    expect(one(one(site, "application_stack") or {}, "python_version") == "3.11", "the app does not run Python 3.11")
    expect(one(app, "https_only") is True, "the app is not HTTPS only")
    expect(one(one(app, "identity") or {}, "type") == "SystemAssigned", "the app has no system-assigned identity")
    expect(one(app, "storage_uses_managed_identity") is True, "the app reaches its storage with a key")
    (plan,) = resources["azurerm_service_plan"].values()
    expect(one(plan, "os_type") == "Linux", "the plan is not Linux")

    (vault,) = resources["azurerm_key_vault"].values()
    expect(one(vault, "enable_rbac_authorization") is True, "the Key Vault does not use RBAC")
    expect(one(vault, "purge_protection_enabled") is True, "the Key Vault has no purge protection")
    expect(not resources.get("azurerm_key_vault_secret"), "secret values must not be in Terraform (state)")

    assignments = resources.get("azurerm_role_assignment", {})
    expect(set(assignments) == set(ROLES), f"role assignments {sorted(assignments)} are not {sorted(ROLES)}")
    for name, block in assignments.items():
        role = one(block, "role_definition_name")
        expect(role not in BROAD_ROLES and one(block, "role_definition_id") is None, f"{name}: broad role {role}")
        if name in ROLES:
            expect((role, one(block, "scope")) == ROLES[name], f"{name}: {role} on {one(block, 'scope')}")

    text = (HERE / "main.tf").read_text()
    declared = set(re.findall(r"^\s+(TRAIN_[A-Z_]+)\s+=", text, re.MULTILINE))
    unknown = declared - settings_fields()
    expect(not unknown, f"app settings Train does not read: {sorted(unknown)}")
    expect({"TRAIN_STORE", "TRAIN_BACKENDS", "TRAIN_AZUREML_WORKSPACE"} <= declared, "app settings miss TRAIN_*")
    return problems


def main() -> int:
    problems = check(load())
    for problem in problems:
        print(f"infra/azure: {problem}", file=sys.stderr)
    if not problems:
        print("infra/azure structure: event subscription, function app, Key Vault and roles as expected")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
