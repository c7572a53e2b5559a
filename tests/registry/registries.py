"""Debian's ``docker-registry`` (distribution 2.8) and ``skopeo`` driven by the registry tests.

A registry that cannot start, or a missing binary, raises: the tests that need it fail.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ServerStartError, wait_until_answers

REGISTRY_BINARY = "docker-registry"
SKOPEO_BINARY = "skopeo"


@dataclass(frozen=True)
class TokenAuth:
    realm: str
    service: str
    issuer: str
    bundle: Path


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerStartError(f"'{name}' is not installed: `make apt-deps` installs docker-registry and skopeo")
    return path


def _config(root: Path, port: int, token: TokenAuth | None) -> str:
    lines = [
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: '127.0.0.1:{port}'}}",
    ]
    if token is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: '{token.realm}'",
            f"    service: '{token.service}'",
            f"    issuer: '{token.issuer}'",
            f"    rootcertbundle: '{token.bundle}'",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def docker_registry(root: Path, port: int, token: TokenAuth | None = None) -> Iterator[str]:
    """A registry on 127.0.0.1:``port`` storing under ``root``; yields ``host:port``."""
    binary = _binary(REGISTRY_BINARY)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(_config(root, port, token))
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_answers(f"http://127.0.0.1:{port}/v2/", process, log, timeout=20)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def skopeo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_binary(SKOPEO_BINARY), *args], capture_output=True, text=True, timeout=timeout)


def push(layout_ref: str, dest: str, creds: str | None, *, all_platforms: bool = True) -> None:
    """``skopeo copy oci:<layout>:<tag> docker://<dest>`` as ``docker push`` would, failing loudly."""
    args = ["copy", "--dest-tls-verify=false"]
    if creds is not None:
        args += ["--dest-creds", creds]
    if all_platforms:
        args.append("--all")
    result = skopeo(*args, layout_ref, f"docker://{dest}")
    if result.returncode != 0:
        raise AssertionError(f"skopeo push to {dest} failed: {result.stderr[-1500:]}")
