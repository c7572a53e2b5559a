"""``WorkspaceRegistry``: the ``ImageRegistry`` port over the workspace registry and the targets.

Which images are pinned: those in the workspace registry (``TRAIN_REGISTRY_URL``), which must sit
under the submitting account's namespace, and those on ``resolve_hosts`` (``*``: every registry).
Images elsewhere are passed through unpinned. Train reads the workspace registry with tokens it
signs itself; other registries are read anonymously. Loopback registries and
``insecure_hosts`` are spoken to over plain HTTP, as Docker does.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Collection, Mapping

from core.ports import Pinned
from core.registry.client import Credentials, Minter, RegistryClient, Traffic, image_error
from core.registry.reference import api_host, parse_image
from core.registry.replicate import ReplicationReport, Replicator
from core.registry.targets import Target
from core.registry.token import TokenIssuer

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class WorkspaceRegistry:
    def __init__(
        self, *, url: str | None = None, issuer: TokenIssuer | None = None, targets: Mapping[str, Target] | None = None,
        resolve_hosts: Collection[str] = (), insecure_hosts: Collection[str] = (), timeout: float = 10.0,
        attempts: int = 4, backoff: float = 0.2, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(url) if url else None
        self.host = parts.netloc if parts else None
        self._workspace_scheme = parts.scheme if parts else "https"
        self.issuer = issuer
        self.targets = dict(targets or {})
        self.resolve_hosts = set(resolve_hosts)
        self.insecure_hosts = set(insecure_hosts)
        self.traffic = Traffic()
        self.reports: deque[ReplicationReport] = deque(maxlen=100)
        self._timeout, self._attempts, self._backoff, self._sleep = timeout, attempts, backoff, sleep
        self._clients: dict[str, RegistryClient] = {}
        self._replicators: dict[str, Replicator] = {}
        self._lock = threading.Lock()

    def resolve(self, account_id: str, ref: str) -> Pinned | None:
        name = parse_image(ref)
        if not self._pins(name.registry):
            return None
        if name.registry == self.host and not name.repository.startswith(f"{account_id}/"):
            raise image_error(f"{name.registry}/{name.repository} is outside this account's namespace: "
                              f"push to {name.registry}/{account_id}/<repository>")
        manifest = self.client(name.registry).platform_manifest(name.repository, name.reference)
        return Pinned(requested=ref, resolved=name.pinned(manifest.digest))

    def replicate(self, pinned: Pinned, backend: str) -> str:
        target = self.targets.get(backend)
        if target is None:
            return pinned.resolved
        name = parse_image(pinned.resolved)
        if name.digest is None:
            raise image_error(f"'{pinned.resolved}' is not pinned to a digest")
        report = self.replicator(backend).copy(self.client(name.registry), name.repository, name.digest)
        self.reports.append(report)
        return report.reference

    def client(self, host: str) -> RegistryClient:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                own = host == self.host
                scheme = self._workspace_scheme if own else self._scheme(host)
                minter = self.issuer.mint if own and self.issuer is not None else None
                client = self._new_client(api_host(host), scheme, minter=minter)
                self._clients[host] = client
            return client

    def replicator(self, backend: str) -> Replicator:
        with self._lock:
            replicator = self._replicators.get(backend)
            if replicator is None:
                target = self.targets[backend]
                client = self._new_client(target.host, target.scheme, credentials=target.credentials)
                replicator = self._replicators[backend] = Replicator(target, client)
            return replicator

    def _new_client(
        self, host: str, scheme: str, *, minter: Minter | None = None, credentials: Credentials | None = None
    ) -> RegistryClient:
        return RegistryClient(
            host, scheme=scheme, credentials=credentials, minter=minter, timeout=self._timeout,
            attempts=self._attempts, backoff=self._backoff, traffic=self.traffic, sleep=self._sleep,
        )

    def _pins(self, registry: str) -> bool:
        return registry == self.host or "*" in self.resolve_hosts or registry in self.resolve_hosts

    def _scheme(self, host: str) -> str:
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return "http" if bare in LOOPBACK or host in self.insecure_hosts else "https"
