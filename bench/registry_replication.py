"""Replicating one image from the workspace registry to a cloud registry (both Debian's
docker-registry on 127.0.0.1): bytes and requests of the first copy, of a repeated copy of the
same digest, and of the same image into a second repository (cross-repository mounts), with the
ratios against the first copy."""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from core.ports import Pinned
from core.registry.client import Manifest, RegistryClient
from core.registry.replicate import ReplicationReport
from core.registry.targets import Target
from core.registry.token import TokenIssuer, new_signing_key
from core.registry.workspace import WorkspaceRegistry
from tests.registry.images import Layout, build_layout
from tests.registry.registries import TokenAuth, docker_registry
from tests.servers import free_port

LAYERS = (8 << 20, 4 << 20, 2 << 20, 1 << 20)
ACCOUNT = "bench"


def upload(client: RegistryClient, layout: Layout, repository: str) -> None:
    """Push a layout with Train's own client (the workspace registry trusts the minted tokens)."""
    blobs = layout.path / "blobs" / "sha256"
    for blob in sorted(blobs.iterdir()):
        digest = f"sha256:{blob.name}"
        if digest == layout.manifest_digest:
            continue
        with blob.open("rb") as body:
            client.finish_upload(repository, client.start_upload(repository), digest, body, blob.stat().st_size)
    body = (blobs / layout.manifest_digest.removeprefix("sha256:")).read_bytes()
    client.put_manifest(repository, "v1", Manifest("application/vnd.oci.image.manifest.v1+json", "", body))


def line(label: str, report: ReplicationReport, seconds: float, first: ReplicationReport) -> str:
    ratio = (report.bytes_transferred / first.bytes_transferred, report.requests / first.requests)
    return (f"  {label:<28} {report.bytes_transferred:>11,} bytes  {report.requests:>3} requests  "
            f"{report.blobs_copied} copied / {report.blobs_mounted} mounted  {seconds * 1000:7.1f} ms  "
            f"bytes x{ratio[0]:.5f}  requests x{ratio[1]:.3f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        port = free_port()
        issuer = TokenIssuer([new_signing_key()], service=f"127.0.0.1:{port}", issuer="train-bench")
        (root / "bundle.pem").write_bytes(issuer.bundle_pem())
        auth = TokenAuth(realm="http://127.0.0.1:9/unused", service=issuer.service, issuer="train-bench",
                         bundle=root / "bundle.pem")
        source = stack.enter_context(docker_registry(root / "workspace", port, auth))
        mirror = stack.enter_context(docker_registry(root / "mirror", free_port()))
        layout = build_layout(root / "image", layers=[os.urandom(size) for size in LAYERS])
        pusher = RegistryClient(source, scheme="http", minter=issuer.mint)
        for repository in (f"{ACCOUNT}/model", f"{ACCOUNT}/model-dev"):
            upload(pusher, layout, repository)
        registry = WorkspaceRegistry(url=f"http://{source}", issuer=issuer,
                                     targets={"sagemaker": Target("registry+http", mirror, "cloud", "http")})
        runs: list[tuple[str, ReplicationReport, float]] = []
        for label, repository in (("first copy", "model"), ("same digest again", "model"),
                                  ("same image, second repo", "model-dev")):
            name = f"{source}/{ACCOUNT}/{repository}"
            pinned = Pinned(f"{name}:v1", f"{name}@{layout.manifest_digest}")
            started = time.perf_counter()
            registry.replicate(pinned, "sagemaker")
            runs.append((label, registry.reports[-1], time.perf_counter() - started))
    first = runs[0][1]
    print(f"registry replication: one image of {len(LAYERS)} layers, {layout.blob_bytes:,} bytes of blobs")
    for label, report, seconds in runs:
        print(line(label, report, seconds, first))
    repeat = runs[1][1]
    print(f"  repeated / first: bytes {repeat.bytes_transferred / first.bytes_transferred:.6f}, "
          f"requests {repeat.requests / first.requests:.3f}")


if __name__ == "__main__":
    main()
