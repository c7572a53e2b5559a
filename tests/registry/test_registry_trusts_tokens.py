"""A real registry (Debian's docker-registry) trusts Train's token service: skopeo pushes and pulls
with ``account_id:api_key``, and another account cannot read what was pushed."""

from __future__ import annotations

import json

from tests.registry.conftest import ACCT_A, ACCT_B, Env
from tests.registry.registries import skopeo


def inspect(env: Env, image: str, creds: str) -> tuple[int, str]:
    result = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", creds, f"docker://{image}")
    return result.returncode, result.stdout + result.stderr


def test_an_account_pushes_and_pulls_its_own_image(env: Env, repo: str) -> None:
    layout = env.layout()
    image = env.push(layout, repo)
    code, out = inspect(env, image, env.creds(ACCT_A))
    assert code == 0, out
    manifest = json.loads(out)
    assert [layer["digest"] for layer in manifest["layers"]] == layout.layer_digests
    pulled = env.tmp / "pulled" / repo.replace("/", "-")
    pulled.parent.mkdir(exist_ok=True)
    result = skopeo("copy", "--src-tls-verify=false", "--src-creds", env.creds(ACCT_A), f"docker://{image}",
                    f"oci:{pulled}:v1")
    assert result.returncode == 0, result.stderr
    assert (pulled / "blobs" / "sha256" / layout.layer_digests[0].removeprefix("sha256:")).exists()


def test_another_account_cannot_pull_it(env: Env, repo: str) -> None:
    image = env.push(env.layout(), repo)
    code, out = inspect(env, image, env.creds(ACCT_B))
    assert code != 0
    assert "denied" in out or "unauthorized" in out
    code, _ = inspect(env, image, f"{ACCT_B}:{env.api_keys[ACCT_A]}")  # A's key is not granted B
    assert code != 0


def test_another_account_cannot_push_into_a_foreign_namespace(env: Env) -> None:
    result = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", env.creds(ACCT_B), env.layout().ref(),
                    f"docker://{env.registry}/{ACCT_A}/planted:v1")
    assert result.returncode != 0
    code, out = inspect(env, f"{env.registry}/{ACCT_A}/planted:v1", env.creds(ACCT_A))
    assert code != 0 and "manifest unknown" in out


def test_a_wrong_api_key_cannot_log_in(env: Env, repo: str) -> None:
    result = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{ACCT_A}:trn_wrongwrongwr_" + "x" * 43,
                    env.layout().ref(), f"docker://{env.registry}/{repo}:v1")
    assert result.returncode != 0
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()
