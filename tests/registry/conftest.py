"""One token-auth workspace registry, one plain registry standing in for ECR / Artifact Registry /
ACR, and a Train server issuing the tokens, shared by the registry tests and stopped at the end."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.api import create_app
from core.auth import create_key
from core.model import JobRecord, JobSpec, Submission
from core.registry.targets import Target
from core.registry.token import RegistryTokens, TokenIssuer, new_signing_key
from core.registry.workspace import WorkspaceRegistry
from core.server import LocalHTTPServer
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore, InMemoryKeyStore
from tests.registry.images import Layout, build_layout
from tests.registry.registries import TokenAuth, docker_registry, push
from tests.servers import free_port

ACCT_A, ACCT_B = "acct-a", "acct-b"
ISSUER = "train-tests"


class RecordingBackend(FakeBackend):
    """The fake backend, remembering the image reference each native job was created with."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.images: dict[str, str | None] = {}

    def submit(self, job: JobRecord) -> Submission:
        self.images[job.id] = job.image.resolved
        return super().submit(job)


@dataclass
class Env:
    tmp: Path
    keys: InMemoryKeyStore
    api_keys: dict[str, str]
    issuer: TokenIssuer
    registry: str  # host:port of the workspace registry (token auth)
    mirror: str  # host:port of the plain registry standing in for a cloud registry
    server: LocalHTTPServer
    api_service: TrainService
    layouts: list[Layout] = field(default_factory=list)

    def creds(self, account: str = ACCT_A) -> str:
        return f"{account}:{self.api_keys[account]}"

    def layout(self, **options: Any) -> Layout:
        layout = build_layout(self.tmp / "layouts" / f"l{len(self.layouts)}", **options)
        self.layouts.append(layout)
        return layout

    def push(self, layout: Layout, repository: str, tag: str = "v1", account: str = ACCT_A) -> str:
        """Push as ``account`` (``docker login`` + ``docker push``); returns the tagged reference."""
        image = f"{self.registry}/{repository}:{tag}"
        push(layout.ref(), image, self.creds(account))
        return image

    def workspace(self, *, targets: dict[str, Target] | None = None, **options: Any) -> WorkspaceRegistry:
        mirror = {"sagemaker": Target("registry+http", self.mirror, "mirror", "http", mounts=True)}
        options = {"attempts": 2, "backoff": 0.0, "timeout": 5.0, **options}
        return WorkspaceRegistry(url=f"http://{self.registry}", issuer=self.issuer,
                                 targets=mirror if targets is None else targets, **options)

    def service(self, registry: WorkspaceRegistry | None = None, clock: FakeClock | None = None,
                ) -> tuple[TrainService, dict[str, RecordingBackend], InMemoryJobStore]:
        backends = {name: RecordingBackend(name) for name in ("local", "sagemaker")}
        store = InMemoryJobStore()
        service = TrainService(store, backends, clock=clock or FakeClock(), registry=registry or self.workspace())
        return service, backends, store


def spec(image: str, backend: str = "sagemaker", **extra: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "train", "backend": backend, "image": image, "command": ["true"], **extra})


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("registry")
    keys = InMemoryKeyStore()
    api_keys = {account: create_key(keys, [account])[0] for account in (ACCT_A, ACCT_B)}
    registry_port = free_port()
    issuer = TokenIssuer([new_signing_key()], service=f"127.0.0.1:{registry_port}", issuer=ISSUER)
    bundle = tmp / "bundle.pem"
    bundle.write_bytes(issuer.bundle_pem())
    with ExitStack() as stack:
        workspace = WorkspaceRegistry(url=f"http://127.0.0.1:{registry_port}", issuer=issuer, attempts=2,
                                      backoff=0.0, resolve_hosts=["*"])
        api_service = TrainService(InMemoryJobStore(), {"local": FakeBackend("local")}, registry=workspace)
        tokens = RegistryTokens(issuer, keys)
        server = LocalHTTPServer(lambda: create_app(api_service, keys, tokens=tokens)).start()
        stack.callback(server.stop)
        auth = TokenAuth(realm=f"{server.url}/v2/token", service=issuer.service, issuer=ISSUER, bundle=bundle)
        registry = stack.enter_context(docker_registry(tmp / "workspace", registry_port, auth))
        mirror = stack.enter_context(docker_registry(tmp / "mirror", free_port()))
        yield Env(tmp, keys, api_keys, issuer, registry, mirror, server, api_service)


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of ACCT_A unique to the test."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40].strip("-")
    return f"{ACCT_A}/{name}-{time.monotonic_ns() % 100000}"
