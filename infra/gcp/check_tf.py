"""Structural check of infra/gcp: parse every .tf with python-hcl2 (a parse error fails) and check
the facts the deployment depends on against the code: the entry points exist in
functions/gcp/main.py, the event function retries, the log sink's filter and its publish grant,
the scheduler's target, the Firestore indexes equal ``firestore_layout.JOB_INDEXES``, the TTL
policy, one service account per function and no primitive role. Prints each problem; exits 1 if
any. Run with the project's interpreter from the repository root (``infra/check_gcp.sh``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra" / "gcp"
MAIN = ROOT / "functions" / "gcp" / "main.py"
SINK_FILTER = 'resource.type="ml_job" AND resource.labels.task_name="service"'
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
AUTHORITATIVE_IAM = re.compile(r"^google_.*_iam_(binding|policy)$")
ENTRY_POINTS = {"http": "http", "events": "vertex_events", "sweeper": "sweeper"}


class ParseError(Exception):
    pass


def _plain(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted (``'"abc"'``); unquote them everywhere."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k not in ("__comments__", "__is_block__")}
    return value


def load(directory: Path = INFRA) -> dict[str, Any]:
    """``{"resource": {(type, name): body}, "data": {...}, "locals": {...}, "variable": {...},
    "terraform": [...]}`` from every .tf file."""
    import hcl2

    out: dict[str, Any] = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "terraform": []}
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise ParseError(f"no .tf files in {directory}")
    for path in files:
        try:
            with path.open() as handle:
                parsed = _plain(hcl2.load(handle))
        except Exception as exc:  # any parser failure is a broken file
            raise ParseError(f"{path.name}: {exc}") from exc
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        out[kind][(rtype, name)] = body
        for block in parsed.get("locals", []):
            out["locals"].update(block)
        for block in parsed.get("variable", []):
            out["variable"].update(block)
        out["terraform"].extend(parsed.get("terraform", []))
    return out


def _one(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested block (python-hcl2 gives blocks as lists)."""
    value = body.get(name)
    if isinstance(value, list):
        value = value[0] if value else {}
    return value if isinstance(value, dict) else {}


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def check(tf: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    resources: dict[tuple[str, str], dict[str, Any]] = tf["resource"]

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    # Provider pinned exactly.
    versions = [_one(block, "required_providers").get("google", {}) for block in tf["terraform"]]
    pins = [str(v.get("version", "")) for v in versions if v]
    need(len(pins) == 1 and re.fullmatch(r"=?\s*\d+\.\d+\.\d+", pins[0]) is not None,
         f"the google provider must be pinned to one exact version, found {pins}")

    # The three functions: gen2, their entry points, one service account each.
    main = MAIN.read_text()
    accounts = []
    for name, entry in ENTRY_POINTS.items():
        function = resources.get(("google_cloudfunctions2_function", name))
        if function is None:
            problems.append(f"google_cloudfunctions2_function.{name} is missing")
            continue
        build, service = _one(function, "build_config"), _one(function, "service_config")
        need(build.get("entry_point") == entry, f"function {name} must run entry point {entry}")
        need(f"def {entry}(" in main, f"functions/gcp/main.py has no entry point {entry}")
        need(str(build.get("runtime", "")).startswith("python3"), f"function {name} must use a python3 runtime")
        accounts.append(service.get("service_account_email"))
        need(service.get("environment_variables") == "${local.environment}",
             f"function {name} must take its settings from local.environment")
    need(len(accounts) == 3 and len(set(accounts)) == 3 and all(accounts),
         f"each function needs its own service account, found {accounts}")

    # The event function: Pub/Sub trigger on the sink's topic, retried.
    trigger = _one(resources.get(("google_cloudfunctions2_function", "events"), {}), "event_trigger")
    need(trigger.get("retry_policy") == "RETRY_POLICY_RETRY", "the events function's trigger must retry")
    need(trigger.get("event_type") == "google.cloud.pubsub.topic.v1.messagePublished",
         "the events function must be triggered by Pub/Sub messages")
    need(trigger.get("pubsub_topic") == "${google_pubsub_topic.vertex_events.id}",
         "the events function must read the vertex_events topic")

    # The log sink, its destination and its publish grant.
    sink = resources.get(("google_logging_project_sink", "vertex_jobs"), {})
    need(sink.get("filter") == SINK_FILTER, f"the log sink's filter must be {SINK_FILTER}")
    need(sink.get("destination") == "pubsub.googleapis.com/${google_pubsub_topic.vertex_events.id}",
         "the log sink must write to the vertex_events topic")
    need(sink.get("unique_writer_identity") is True, "the log sink needs its own writer identity")
    grants = [body for (rtype, _), body in resources.items() if rtype == "google_pubsub_topic_iam_member"]
    need(any(g.get("member") == "${google_logging_project_sink.vertex_jobs.writer_identity}"
             and g.get("role") == "roles/pubsub.publisher" for g in grants),
         "the log sink's writer identity must be granted roles/pubsub.publisher on the topic")

    # The scheduler POSTs to the sweeper with an OIDC token.
    job = resources.get(("google_cloud_scheduler_job", "sweep"), {})
    target = _one(job, "http_target")
    need(target.get("http_method") == "POST", "the scheduler must POST to the sweeper")
    need("google_cloudfunctions2_function.sweeper" in str(target.get("uri")), "the scheduler must call the sweeper")
    need(bool(_one(target, "oidc_token")), "the scheduler must authenticate with an OIDC token")

    problems += _check_firestore(tf)

    # Least privilege: no primitive role, no authoritative IAM resource.
    roles = [str(value) for key, value in _walk(resources) if key == "role"]
    roles += [str(value) for key, value in _walk(tf["locals"]) if key == "role"]
    need(not PRIMITIVE_ROLES & set(roles), f"primitive roles granted: {sorted(PRIMITIVE_ROLES & set(roles))}")
    authoritative = [f"{t}.{n}" for t, n in resources if AUTHORITATIVE_IAM.match(t)]
    need(not authoritative, f"authoritative IAM resources replace others' grants: {authoritative}")
    return problems


def _check_firestore(tf: dict[str, Any]) -> list[str]:
    from core.stores.firestore_layout import JOB_INDEXES, TTL_FIELD, UNINDEXED_JOB_FIELDS, Collections

    problems: list[str] = []
    resources = tf["resource"]
    names = Collections("${var.collection_prefix}")
    database = resources.get(("google_firestore_database", "default"), {})
    if database.get("name") != "(default)" or database.get("type") != "FIRESTORE_NATIVE":
        problems.append("the Firestore database must be the (default) database in native mode")
    declared = tuple(tuple((field, order) for field, order in index) for index in tf["locals"].get("job_indexes", []))
    if declared != JOB_INDEXES:
        problems.append("local.job_indexes differs from core/stores/firestore_layout.py JOB_INDEXES")
    index = resources.get(("google_firestore_index", "jobs"), {})
    if index.get("collection") != names.jobs or "local.job_indexes" not in str(index.get("for_each")):
        problems.append(f"google_firestore_index.jobs must declare local.job_indexes on {names.jobs}")
    fields = {(body.get("collection"), body.get("field")): body
              for (rtype, _), body in resources.items() if rtype == "google_firestore_field"}
    ttl = fields.get((names.idempotency, TTL_FIELD))
    if ttl is None or "ttl_config" not in ttl:
        problems.append(f"a TTL policy on {names.idempotency}.{TTL_FIELD} is missing")
    for field in UNINDEXED_JOB_FIELDS:
        exempt = fields.get((names.jobs, field))
        if exempt is None or _one(exempt, "index_config") != {}:
            problems.append(f"{names.jobs}.{field} must be exempt from single-field indexes")
    return problems


def _settings_fields() -> set[str]:
    from core.config import Settings

    return set(Settings.model_fields)


def check_environment(tf: dict[str, Any]) -> list[str]:
    names = [k for k in tf["locals"].get("environment", {}) if k.startswith("TRAIN_")]
    unknown = [k for k in names if k.removeprefix("TRAIN_").lower() not in _settings_fields()]
    return [f"local.environment sets unknown variables {unknown}"] if unknown else []


def main() -> int:
    sys.path.insert(0, str(ROOT))
    try:
        tf = load()
    except ParseError as exc:
        print(f"infra/gcp does not parse: {exc}", file=sys.stderr)
        return 1
    problems = check(tf) + check_environment(tf)
    for problem in problems:
        print(f"infra/gcp: {problem}", file=sys.stderr)
    if not problems:
        print(f"infra/gcp: {len(tf['resource'])} resources parsed; structure checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
