"""Resolution at submission: tag to digest, index to linux/amd64, and the bad inputs (SPEC §8)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from core.errors import InvalidSpecError
from core.model import JobQuery
from core.registry.client import DOCKER_MANIFEST, RegistryError
from core.registry.workspace import WorkspaceRegistry
from tests.registry.conftest import ACCT_A, ACCT_B, Env, spec
from tests.registry.fake_registry import Answer, FakeRegistry, Seen
from tests.servers import free_port

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DIGEST = "sha256:" + "ab" * 32


def test_a_tag_is_pinned_to_its_digest_and_both_are_recorded(env: Env, repo: str) -> None:
    layout = env.layout()
    image = env.push(layout, repo)
    service, backends, store = env.service()
    job, _ = service.submit(ACCT_A, spec(image, backend="local"))
    assert job.image.requested == image
    assert job.image.resolved == f"{env.registry}/{repo}@{layout.manifest_digest}"
    assert store.get(ACCT_A, job.id).image.resolved == job.image.resolved  # type: ignore[union-attr]
    assert backends["local"].images[job.id] == job.image.resolved


def test_a_multi_platform_index_is_pinned_to_its_linux_amd64_manifest(env: Env, repo: str) -> None:
    layout = env.layout(platforms=("arm64", "amd64"))
    image = env.push(layout, repo)
    service, _, _ = env.service()
    job, _ = service.submit(ACCT_A, spec(image, backend="local"))
    assert job.image.resolved == f"{env.registry}/{repo}@{layout.platform_digests['amd64']}"
    assert layout.platform_digests["amd64"] != layout.manifest_digest


def test_an_index_without_linux_amd64_is_a_422(env: Env, repo: str) -> None:
    image = env.push(env.layout(platforms=("arm64", "s390x")), repo)
    service, _, _ = env.service()
    with pytest.raises(InvalidSpecError, match="linux/amd64") as err:
        service.submit(ACCT_A, spec(image, backend="local"))
    assert err.value.errors[0].path == ("image",)


def test_a_missing_tag_is_a_422_naming_image_and_nothing_is_stored(env: Env, repo: str) -> None:
    env.push(env.layout(), repo)
    service, backends, store = env.service()
    with pytest.raises(InvalidSpecError) as err:
        service.submit(ACCT_A, spec(f"{env.registry}/{repo}:nope"))
    assert err.value.status == 422 and err.value.errors[0].path == ("image",)
    assert "nope" in err.value.detail
    assert store.list(ACCT_A, JobQuery())[0] == [] and backends["sagemaker"].submit_calls == 0


@pytest.mark.parametrize("image", [
    "127.0.0.1:5000/Acct-A/Upper:v1", "127.0.0.1:5000/acct-a//x:v1", "127.0.0.1:5000/acct-a/x:-bad",
    "127.0.0.1:5000/acct-a/x@sha256:nothex", "bad host!/acct-a/x:v1", "acct-a/x:" + "t" * 129,
])
def test_a_malformed_reference_is_a_422_naming_image(env: Env, image: str) -> None:
    service, _, _ = env.service()
    with pytest.raises(InvalidSpecError) as err:
        service.submit(ACCT_A, spec(image))
    assert err.value.errors[0].path == ("image",)


def test_an_image_in_another_accounts_namespace_is_refused(env: Env, repo: str) -> None:
    image = env.push(env.layout(), repo)
    service, _, _ = env.service()
    with pytest.raises(InvalidSpecError, match="namespace"):
        service.submit(ACCT_B, spec(image))


def test_images_in_registries_not_resolved_pass_through_unpinned(env: Env) -> None:
    service, _, _ = env.service()
    job, _ = service.submit(ACCT_A, spec("python:3.11", backend="local"))
    assert job.image.requested == "python:3.11" and job.image.resolved is None


def fake_workspace(**options: Any) -> WorkspaceRegistry:
    return WorkspaceRegistry(resolve_hosts=["*"], backoff=0.0, **{"attempts": 3, **options})


def answer(status: int, headers: dict[str, str] | None = None) -> Any:
    def reply(seen: Seen) -> Answer:
        return status, headers or {}, b""
    return reply


def test_a_registry_answering_5xx_is_retried_a_bounded_number_of_times_then_502(env: Env) -> None:
    service, _, store = env.service(fake_workspace())
    with FakeRegistry(answer(503)) as fake, pytest.raises(RegistryError) as err:
        service.submit(ACCT_A, spec(f"{fake.host}/acct-a/x:v1"))
    assert err.value.status == 502 and fake.host in err.value.detail and "HTTP 503" in err.value.detail
    assert len(fake.seen) == 3
    assert store.list(ACCT_A, JobQuery())[0] == []


def test_a_registry_that_times_out_is_a_502_naming_it(env: Env) -> None:
    service, _, _ = env.service(fake_workspace(attempts=2, timeout=0.2))
    with FakeRegistry(answer(200), delay=1.0) as fake, pytest.raises(RegistryError) as err:
        service.submit(ACCT_A, spec(f"{fake.host}/acct-a/x:v1"))
    assert fake.host in err.value.detail and "timed out" in err.value.detail
    assert len(fake.seen) == 2


def test_an_unknown_registry_is_a_502_naming_it(env: Env) -> None:
    service, _, _ = env.service(fake_workspace(attempts=2))
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError, match=host):
        service.submit(ACCT_A, spec(f"{host}/acct-a/x:v1"))
    with pytest.raises(RegistryError, match=r"registry\.invalid"):
        service.submit(ACCT_A, spec("registry.invalid/acct-a/x:v1"))


def test_an_unsupported_manifest_media_type_is_a_422(env: Env) -> None:
    service, _, _ = env.service(fake_workspace())
    headers = {"Content-Type": SCHEMA1, "Docker-Content-Digest": DIGEST}
    with FakeRegistry(answer(200, headers)) as fake, pytest.raises(InvalidSpecError, match="prettyjws") as err:
        service.submit(ACCT_A, spec(f"{fake.host}/acct-a/x:v1"))
    assert err.value.errors[0].path == ("image",)


def test_docker_v2_manifests_are_pinned_from_the_head_answer(env: Env) -> None:
    service, _, _ = env.service(fake_workspace())
    headers = {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": DIGEST}
    with FakeRegistry(answer(200, headers)) as fake:
        job, _ = service.submit(ACCT_A, spec(f"{fake.host}/acct-a/x:v1", backend="local"))
        assert job.image.resolved == f"{fake.host}/acct-a/x@{DIGEST}"
        first = fake.seen[0]
        assert first.method == "HEAD" and "application/vnd.oci.image.index.v1+json" in first.headers["accept"]


def post_job(env: Env, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{env.server.url}/v1/jobs", data=json.dumps(body).encode(), method="POST",
        headers={"x-api-key": env.api_keys[ACCT_A], "x-selected-account-id": ACCT_A,
                 "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_over_http_a_missing_tag_is_a_422_and_a_dead_registry_a_502(env: Env, repo: str) -> None:
    image = env.push(env.layout(), repo)
    base = {"name": "train", "backend": "local", "command": ["true"]}
    status, job = post_job(env, {**base, "image": image})
    assert status == 201 and job["image"]["resolved"].startswith(f"{env.registry}/{repo}@sha256:")
    status, problem = post_job(env, {**base, "image": f"{env.registry}/{repo}:missing"})
    assert status == 422 and problem["errors"][0]["field"] == "image"
    dead = f"127.0.0.1:{free_port()}"
    status, problem = post_job(env, {**base, "image": f"{dead}/acct-a/x:v1"})
    assert status == 502 and dead in problem["detail"]
