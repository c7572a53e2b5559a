"""Small OCI image layouts built in the test, for skopeo to push (no container engine needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layout:
    """An OCI image layout directory; ``manifest_digest`` is what a tag will point at once pushed
    (the index for a multi-platform image), ``platform_digests`` each platform's manifest."""

    path: Path
    manifest_digest: str = ""
    platform_digests: dict[str, str] = field(default_factory=dict)
    layer_digests: list[str] = field(default_factory=list)
    blob_bytes: int = 0

    def ref(self, tag: str = "v1") -> str:
        return f"oci:{self.path}:{tag}"

    def _put(self, data: bytes) -> str:
        digest = sha256(data)
        blobs = self.path / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return digest


def _layer(payload: bytes) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


def _image(layout: Layout, layers: list[bytes], arch: str) -> tuple[str, int]:
    diff_ids, descriptors = [], []
    for layer in layers:
        blob, diff_id = _layer(layer)
        digest = layout._put(blob)
        layout.layer_digests.append(digest)
        layout.blob_bytes += len(blob)
        diff_ids.append(diff_id)
        descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": len(blob)})
    config = json.dumps({
        "architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    config_digest = layout._put(config)
    layout.blob_bytes += len(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": descriptors,
    }).encode()
    return layout._put(manifest), len(manifest)


def build_layout(
    path: Path, *, tag: str = "v1", layers: list[bytes] | None = None, layer_sizes: tuple[int, ...] = (2048, 4096),
    platforms: tuple[str, ...] = ("amd64",),
) -> Layout:
    """One image (``platforms`` of one) or a multi-platform index, layers of random bytes unless given."""
    layout = Layout(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entries = []
    for arch in platforms:
        content = layers if layers is not None else [os.urandom(size) for size in layer_sizes]
        digest, size = _image(layout, content, arch)
        layout.platform_digests[arch] = digest
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"architecture": arch, "os": "linux"}})
    if len(platforms) == 1:
        top = {**entries[0]}
        top.pop("platform")
        layout.manifest_digest = top["digest"]
    else:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        top = {"mediaType": OCI_INDEX, "digest": layout._put(index), "size": len(index)}
        layout.manifest_digest = top["digest"]
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return layout
