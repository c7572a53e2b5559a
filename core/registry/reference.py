"""Image references as Docker parses them: ``[registry/]repository[:tag][@digest]``.

The first path component is a registry when it has a ``.`` or ``:`` or is ``localhost``
(otherwise ``python:3.11`` is Docker Hub's ``library/python``). Repository components are
lowercase ``[a-z0-9]`` runs joined by ``.``, ``_``, ``__`` or dashes; a tag is at most 128 of
``[A-Za-z0-9_.-]`` not starting with ``.`` or ``-``; names are at most 255 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidSpecError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_REGISTRY = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                       r"(?::[0-9]{1,5})?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_NAME = 255


@dataclass(frozen=True)
class ImageName:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def pinned(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _bad(text: str, why: str, field: tuple[str | int, ...]) -> InvalidSpecError:
    return InvalidSpecError.at(field, f"'{text[:300]}' is not an image reference: {why}")


def parse_image(text: str, *, field: tuple[str | int, ...] = ("image",)) -> ImageName:
    """Raises:
    InvalidSpecError: naming ``field`` and what is wrong with the reference.
    """
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise _bad(text, "a digest is sha256: and 64 lowercase hex digits", field)
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
        if not _REGISTRY.match(registry):
            raise _bad(text, f"'{registry}' is not a registry host", field)
    else:
        registry, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if colon and not _TAG.match(tag):
        raise _bad(text, "a tag is 1-128 of A-Z a-z 0-9 _ . - and does not start with . or -", field)
    parts = name.split("/") if name else []
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        raise _bad(text, "repository names are lowercase letters and digits separated by . _ __ or -", field)
    if registry == DOCKER_HUB and len(parts) == 1:
        parts = ["library", *parts]
    repository = "/".join(parts)
    if len(registry) + 1 + len(repository) > MAX_NAME:
        raise _bad(text, f"the name is longer than {MAX_NAME} characters", field)
    return ImageName(registry, repository, tag or (None if at else "latest"), digest or None)


def api_host(registry: str) -> str:
    """The host a registry's API answers on (Docker Hub's is not ``docker.io``)."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry
