"""Copy one image, by digest, from the source registry to a cloud registry, blob by blob.

Order of work, cheapest first: the target already has the manifest (one HEAD, done); a blob is
already in the target repository (HEAD, skipped); a blob this process has put in another
repository of the same target is mounted from there (one POST, no bytes); anything else is read
from the source (digest checked) and uploaded. The manifest is written last, by digest, so a
reader never sees a manifest whose blobs are missing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from core.registry.client import MANIFEST_TYPES, Manifest, RegistryClient, RegistryError, Traffic
from core.registry.targets import Target


@dataclass
class ReplicationReport:
    reference: str
    manifest_present: bool = False
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_copied: int = 0
    requests: int = 0
    bytes_transferred: int = 0  # in and out, both registries, headers aside


class Replicator:
    """Copies into one target. ``_homes`` remembers a repository of the target that holds each
    blob this process has written, for cross-repository mounts."""

    def __init__(self, target: Target, client: RegistryClient) -> None:
        self.target = target
        self.client = client
        self._homes: dict[str, str] = {}
        self._prepared: set[str] = set()
        self._lock = threading.Lock()

    def copy(self, source: RegistryClient, repository: str, digest: str) -> ReplicationReport:
        """Raises:
        RegistryError: either registry failed (retryable) or refused (not retryable).
        """
        dest = self.target.repository(repository)
        report = ReplicationReport(reference=f"{self.target.host}/{dest}@{digest}")
        before = _snapshot(source.traffic, self.client.traffic)
        try:
            self._copy(source, repository, dest, digest, report)
        finally:
            after = _snapshot(source.traffic, self.client.traffic)
            report.requests = after[0] - before[0]
            report.bytes_transferred = after[1] - before[1]
        return report

    def _copy(self, source: RegistryClient, repository: str, dest: str, digest: str, report: ReplicationReport) -> None:
        if self.target.prepare is not None and dest not in self._prepared:
            self.target.prepare(dest)
            self._prepared.add(dest)
        if self.client.manifest(dest, digest) is not None:
            report.manifest_present = True
            return
        manifest = source.manifest(repository, digest, body=True)
        if manifest is None:
            raise RegistryError(f"registry {source.host} no longer has {repository}@{digest}", retryable=False)
        if "sha256:" + hashlib.sha256(manifest.body).hexdigest() != digest:
            raise RegistryError(f"registry {source.host} sent {repository}@{digest} with other content")
        if manifest.media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{repository}@{digest} is a {manifest.media_type}, not one image", retryable=False)
        for blob in _blobs(manifest):
            self._copy_blob(source, repository, dest, blob, report)
        self.client.put_manifest(dest, digest, Manifest(manifest.media_type, digest, manifest.body))

    def _copy_blob(
        self, source: RegistryClient, repository: str, dest: str, digest: str, report: ReplicationReport
    ) -> None:
        if self.client.has_blob(dest, digest):
            report.blobs_skipped += 1
            self._remember(digest, dest)
            return
        home = self._homes.get(digest)
        location: str | None = None
        if self.target.mounts and home is not None and home != dest:
            location = self.client.mount_blob(dest, digest, home)
            if location is None:
                report.blobs_mounted += 1
                self._remember(digest, dest)
                return
        body, size = source.open_blob(repository, digest)
        with body:
            self.client.finish_upload(dest, location or self.client.start_upload(dest), digest, body, size)
        report.blobs_copied += 1
        report.bytes_copied += size
        self._remember(digest, dest)

    def _remember(self, digest: str, dest: str) -> None:
        with self._lock:
            self._homes.setdefault(digest, dest)


def _blobs(manifest: Manifest) -> list[str]:
    document = json.loads(manifest.body)
    descriptors = [document.get("config") or {}, *(document.get("layers") or [])]
    return list(dict.fromkeys(str(d["digest"]) for d in descriptors if d.get("digest")))


def _snapshot(*traffic: Traffic) -> tuple[int, int]:
    unique = list({id(t): t for t in traffic}.values())  # two clients may share one counter
    return sum(t.requests for t in unique), sum(t.bytes_in + t.bytes_out for t in unique)
