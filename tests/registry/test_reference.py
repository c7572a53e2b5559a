"""Parsing image references as Docker does, and the client's redirect and scheme rules."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import InvalidSpecError
from core.registry.client import RegistryClient, RegistryError
from core.registry.reference import parse_image
from tests.registry.fake_registry import Answer, FakeRegistry, Seen

D = "sha256:" + "0" * 64


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("python:3.11", "docker.io", "library/python", "3.11", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("127.0.0.1:5000/acct-a/app:v1", "127.0.0.1:5000", "acct-a/app", "v1", None),
    (f"registry.example/acct-a/app@{D}", "registry.example", "acct-a/app", None, D),
    (f"registry.example/acct-a/app:v1@{D}", "registry.example", "acct-a/app", "v1", D),
    ("us-docker.pkg.dev/p/r/a.b__c-d/e:V_1.0-x", "us-docker.pkg.dev", "p/r/a.b__c-d/e", "V_1.0-x", None),
])
def test_references(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    name = parse_image(text)
    assert (name.registry, name.repository, name.tag, name.digest) == (registry, repository, tag, digest)
    assert name.reference == (digest or tag)


@pytest.mark.parametrize("text", [
    "", ":v1", "App", "a//b", "a/b:", "a/b:.x", "a/-b", "a_/b", "a/b@sha256:abc", "a/b@md5:" + "0" * 32,
    "bad_host.example:port/a", "registry.example/" + "a" * 260,
])
def test_malformed_references(text: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_image(text)
    assert err.value.errors[0].path == ("image",)


def test_authorization_is_not_sent_along_a_redirect() -> None:
    def answer(seen: Seen) -> Answer:
        if seen.path.startswith("/storage/"):
            return 200, {}, b"blob"
        if "authorization" not in seen.headers:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 307, {"Location": "/storage/blob"}, b""

    with FakeRegistry(answer) as fake:
        client = RegistryClient(fake.host, scheme="http", credentials=lambda: ("u", "p"), attempts=1)
        body, size = client.open_blob("a/b", "sha256:" + hashlib.sha256(b"blob").hexdigest())
        body.close()
    storage = [s for s in fake.seen if s.path.startswith("/storage/")]
    assert size == 4 and storage and "authorization" not in storage[0].headers


def test_a_realm_that_is_not_http_is_refused() -> None:
    def answer(seen: Seen) -> Answer:
        return 401, {"WWW-Authenticate": 'Bearer realm="file:///etc/passwd",service="x"'}, b""

    with FakeRegistry(answer) as fake, pytest.raises(RegistryError, match="not an http"):
        RegistryClient(fake.host, scheme="http", attempts=1).manifest("a/b", "v1")
