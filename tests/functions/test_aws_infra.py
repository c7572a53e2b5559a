"""serverless.yml agrees with core/: the routes with the route table, the table with
``table_definition``, the event rule with the job-name prefix, the environment with ``Settings``;
and no IAM statement grants a wildcard action or an unscoped resource it does not need.
(``infra/check_aws.sh`` packages the file and lints the generated template.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.api import create_app
from core.backends.sagemaker_map import EVENT_DETAIL_TYPE, EVENT_SOURCE
from core.config import Settings
from core.service import TrainService
from core.stores.dynamodb_table import TTL, table_definition
from tests.fakes import InMemoryJobStore, InMemoryKeyStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())
    return data


def test_http_routes_are_the_route_table(config: dict[str, Any]) -> None:
    app = create_app(TrainService(InMemoryJobStore(), {}), InMemoryKeyStore())
    table = {(method, rule.pattern) for method, rule in app.allowed}
    declared = set()
    for event in config["functions"]["http"]["events"]:
        method, path = event["httpApi"].split(" ", 1)
        declared.add((method, "^" + re.sub(r"\{\w+\}", "[^/]+", path) + "$"))
    assert declared == table


def test_table_is_the_one_the_store_creates(config: dict[str, Any]) -> None:
    table = config["resources"]["Resources"]["JobsTable"]["Properties"]
    expected = table_definition(table["TableName"])
    for field in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[field] == expected[field], field
    assert table["SSESpecification"] == {"SSEEnabled": expected["SSESpecification"]["Enabled"]}
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert config["provider"]["environment"]["TRAIN_STORE"] == "dynamodb://" + table["TableName"]


def test_event_rule_takes_only_our_training_jobs(config: dict[str, Any]) -> None:
    (event,) = config["functions"]["sagemakerEvents"]["events"]
    pattern = event["eventBridge"]["pattern"]
    assert pattern["source"] == [EVENT_SOURCE]
    assert pattern["detail-type"] == [EVENT_DETAIL_TYPE]
    assert pattern["detail"]["TrainingJobName"] == [{"prefix": "${param:jobPrefix}-"}]
    assert config["provider"]["environment"]["TRAIN_JOB_PREFIX"] == "${param:jobPrefix}"
    assert config["params"]["default"]["jobPrefix"] == Settings.model_fields["job_prefix"].default
    assert event["eventBridge"]["deadLetterQueueArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}


def test_handlers_and_environment_exist(config: dict[str, Any]) -> None:
    for function in config["functions"].values():
        module, _, name = function["handler"].rpartition(".")
        assert (ROOT / f"{module}.py").is_file() and f"def {name}(" in (ROOT / f"{module}.py").read_text()
    for variable in config["provider"]["environment"]:
        if variable.startswith("TRAIN_"):
            assert variable.removeprefix("TRAIN_").lower() in Settings.model_fields, variable


def _statements(config: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = config["resources"]["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("role", ["HttpRole", "SagemakerEventsRole", "SweeperRole"])
def test_roles_grant_no_wildcards(config: dict[str, Any], role: str) -> None:
    for statement in _statements(config, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if statement["Resource"] == "*":
            assert all(action.startswith("xray:") for action in actions), statement  # X-Ray has no resources


def test_each_function_has_its_own_role(config: dict[str, Any]) -> None:
    roles = [function["role"] for function in config["functions"].values()]
    assert len(set(roles)) == len(roles) == 3
    # The event function resubmits preempted attempts, so it may create training jobs, but only
    # ours, and pass only the job role, only to SageMaker.
    for statement in _statements(config, "SagemakerEventsRole"):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(a.startswith("sagemaker:") for a in actions):
            assert statement["Resource"]["Fn::Sub"].endswith(":training-job/${param:jobPrefix}-*")
        if "iam:PassRole" in actions:
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
