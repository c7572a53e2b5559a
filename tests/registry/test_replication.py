"""Replication by digest to the backend's registry, and the tag that moves under a submitted job."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from core.bootstrap import build
from core.config import Settings
from core.lifecycle import Status
from core.registry.client import RegistryClient
from core.registry.targets import Target
from core.registry.token import RegistryTokens
from tests.fakes import FakeClock
from tests.registry.conftest import ACCT_A, ISSUER, Env, spec
from tests.registry.registries import docker_registry
from tests.servers import free_port


def mirror_manifest(env: Env, repository: str, digest: str) -> dict[str, object] | None:
    found = RegistryClient(env.mirror, scheme="http").manifest(repository, digest, body=True)
    return None if found is None else json.loads(found.body)


def test_the_first_submit_copies_every_blob_and_the_job_runs_the_cloud_copy(env: Env, repo: str) -> None:
    layout = env.layout()
    image = env.push(layout, repo)
    registry = env.workspace()
    service, backends, store = env.service(registry)
    job, _ = service.submit(ACCT_A, spec(image))
    replica = f"{env.mirror}/mirror/{repo}@{layout.manifest_digest}"
    assert backends["sagemaker"].images[job.id] == replica
    stored = store.get(ACCT_A, job.id)
    assert stored is not None and stored.image.replicated == replica
    assert stored.image.resolved == f"{env.registry}/{repo}@{layout.manifest_digest}"
    report = registry.reports[-1]
    assert (report.blobs_copied, report.blobs_skipped, report.blobs_mounted) == (3, 0, 0)  # config + 2 layers
    assert report.bytes_copied == layout.blob_bytes
    copied = mirror_manifest(env, f"mirror/{repo}", layout.manifest_digest)
    assert copied is not None and [x["digest"] for x in copied["layers"]] == layout.layer_digests  # type: ignore[index]


def test_blobs_already_in_the_target_are_skipped(env: Env, repo: str) -> None:
    shared, first, second = os.urandom(3000), os.urandom(1000), os.urandom(1000)
    registry = env.workspace()
    service, _, _ = env.service(registry)
    service.submit(ACCT_A, spec(env.push(env.layout(layers=[shared, first]), repo, "v1")))
    service.submit(ACCT_A, spec(env.push(env.layout(layers=[shared, second]), repo, "v2")))
    report = registry.reports[-1]
    assert (report.blobs_copied, report.blobs_skipped, report.blobs_mounted) == (2, 1, 0)  # config and new layer


def test_blobs_in_another_repository_of_the_target_are_mounted_not_copied(env: Env, repo: str) -> None:
    layout = env.layout()
    registry = env.workspace()
    service, _, _ = env.service(registry)
    service.submit(ACCT_A, spec(env.push(layout, repo)))
    service.submit(ACCT_A, spec(env.push(layout, f"{repo}-copy")))
    report = registry.reports[-1]
    assert (report.blobs_copied, report.blobs_mounted, report.bytes_copied) == (0, 3, 0)
    assert mirror_manifest(env, f"mirror/{repo}-copy", layout.manifest_digest) is not None


def test_the_tag_moves_the_job_does_not(env: Env, repo: str) -> None:
    first, second = env.layout(), env.layout()
    registry = env.workspace()
    service, backends, store = env.service(registry)
    image = env.push(first, repo, "v1")
    job, _ = service.submit(ACCT_A, spec(image))
    env.push(second, repo, "v1")  # the tag now names another image

    pinned = store.get(ACCT_A, job.id)
    assert pinned is not None and pinned.image.resolved == f"{env.registry}/{repo}@{first.manifest_digest}"
    assert backends["sagemaker"].images[job.id] == f"{env.mirror}/mirror/{repo}@{first.manifest_digest}"
    ran = mirror_manifest(env, f"mirror/{repo}", first.manifest_digest)
    assert ran is not None and [x["digest"] for x in ran["layers"]] == first.layer_digests  # type: ignore[index]

    later, _ = service.submit(ACCT_A, spec(image))
    assert later.image.resolved == f"{env.registry}/{repo}@{second.manifest_digest}"

    again, _ = service.submit(ACCT_A, spec(f"{env.registry}/{repo}@{first.manifest_digest}"))
    report = registry.reports[-1]
    assert again.image.replicated == backends["sagemaker"].images[job.id]
    assert report.manifest_present and (report.blobs_copied, report.blobs_mounted, report.bytes_copied) == (0, 0, 0)
    assert report.requests <= 2  # one HEAD (and at most one token round trip)


def test_a_target_that_is_down_leaves_the_job_pending_and_the_sweeper_finishes_it(env: Env, repo: str) -> None:
    port = free_port()
    registry = env.workspace(targets={"sagemaker": Target("registry+http", f"127.0.0.1:{port}", "late", "http")})
    clock = FakeClock()
    service, backends, store = env.service(registry, clock)
    layout = env.layout()
    job, _ = service.submit(ACCT_A, spec(env.push(layout, repo)))
    assert job.status == Status.PENDING and not job.cloud_job_identifier and backends["sagemaker"].submit_calls == 0

    with docker_registry(env.tmp / "late", port):
        clock.advance(seconds=120)
        report = service.sweep()
        done = store.get(ACCT_A, job.id)
    assert report.submitted == 1 and done is not None and done.cloud_job_identifier
    assert backends["sagemaker"].images[job.id] == f"127.0.0.1:{port}/late/{repo}@{layout.manifest_digest}"


def test_a_target_that_refuses_fails_the_job_with_the_reason(env: Env, repo: str) -> None:
    refusing = Target("registry+http", env.registry, "acct-b", "http")  # anonymous: the token service says 401
    registry = env.workspace(targets={"sagemaker": refusing})
    service, backends, _ = env.service(registry)
    job, _ = service.submit(ACCT_A, spec(env.push(env.layout(), repo)))
    assert job.status == Status.FAILED and "copying the image for sagemaker failed" in (job.status_reason or "")
    assert backends["sagemaker"].submit_calls == 0


def test_local_mode_pins_the_digest_and_still_runs_the_command_directly(env: Env, repo: str, tmp_path: Path) -> None:
    layout = env.layout()
    image = env.push(layout, repo)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(env.issuer.keys[0].pem())
    settings = Settings(
        data_dir=tmp_path / "data", registry_url=f"http://{env.registry}", registry_signing_keys=str(key_file),
        registry_service=env.issuer.service, registry_issuer=ISSUER, registry_attempts=2,
    )
    wiring = build(settings)
    try:
        assert isinstance(wiring.tokens, RegistryTokens)
        local = spec(image, backend="local", command=[sys.executable, "-c", "print('ran directly')"])
        job, _ = wiring.service.submit(ACCT_A, local)
        assert job.image.resolved == f"{env.registry}/{repo}@{layout.manifest_digest}"
        deadline = time.monotonic() + 20
        while wiring.service.get(ACCT_A, job.id).status != Status.COMPLETED:
            assert time.monotonic() < deadline, "the local job did not complete"
            time.sleep(0.05)
        done = wiring.service.get(ACCT_A, job.id)
        assert done.image.replicated == done.image.resolved
        assert any("ran directly" in line.message for line in wiring.service.logs(ACCT_A, job.id).lines)
    finally:
        wiring.close()
