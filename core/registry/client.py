"""An OCI distribution API client on the standard library: manifests, blobs, uploads, mounts.

It answers the registry's ``WWW-Authenticate`` challenge itself (``Bearer``: fetch a token from
the realm with Basic credentials, or have ``minter`` sign one when the registry trusts Train's
own token service; ``Basic``: send the credentials), caches the header per scope, and retries
connection failures, timeouts, 429 and 5xx a bounded number of times with exponential backoff
before raising a 502 ``RegistryError`` that names the registry. Authorization is never sent
along a redirect (blob GETs redirect to storage that refuses a second credential).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any

from core.errors import InvalidSpecError, TrainError
from core.registry.token import Scope, parse_scopes

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
PLATFORM = ("linux", "amd64")
SPOOL_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024
_PARAM = re.compile(r'(\w+)="([^"]*)"')

Credentials = Callable[[], tuple[str, str] | None]
Minter = Callable[[list[Scope]], str]


class RegistryError(TrainError):
    """A registry could not be reached or failed. Retryable unless it refused us outright."""

    status, title, slug = 502, "Registry error", "registry-error"

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable  # type: ignore[misc]


def image_error(message: str) -> InvalidSpecError:
    return InvalidSpecError.at(("image",), message)


@dataclass
class Traffic:
    """What a client sent and received, for tests and the replication benchmark."""

    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    body: bytes = b""


@dataclass
class _Upload:
    body: IO[bytes] | bytes | None = None
    size: int = 0


class RegistryClient:
    def __init__(
        self, host: str, *, scheme: str = "https", credentials: Credentials | None = None,
        minter: Minter | None = None, timeout: float = 10.0, attempts: int = 4, backoff: float = 0.2,
        traffic: Traffic | None = None, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self.base = f"{scheme}://{host}"
        self.credentials = credentials
        self.minter = minter
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.traffic = traffic if traffic is not None else Traffic()
        self.sleep = sleep
        self._authorization: dict[str, str] = {}
        self._opener = urllib.request.build_opener()  # follows GET/HEAD redirects without Authorization

    # ---- manifests ----------------------------------------------------------------------------

    def manifest(self, repo: str, reference: str, *, body: bool = False) -> Manifest | None:
        """HEAD (or GET with ``body``) a manifest by tag or digest; None when it is not there."""
        reply = self._call("GET" if body else "HEAD", f"/v2/{repo}/manifests/{reference}", [_pull(repo)],
                           headers={"Accept": ACCEPT})
        if reply.status == 404:
            return None
        self._expect(reply, 200, f"reading manifest {repo}:{reference}")
        media_type = (reply.header("Content-Type") or "").split(";")[0].strip()
        digest = reply.header("Docker-Content-Digest")
        if body and reply.body:
            digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        if not digest or not media_type:
            return self.manifest(repo, reference, body=True) if not body else Manifest(media_type, digest or "")
        return Manifest(media_type, digest, reply.body)

    def platform_manifest(self, repo: str, reference: str) -> Manifest:
        """The single-platform manifest ``reference`` names: itself, or an index's linux/amd64 entry.

        Raises:
            InvalidSpecError: no such tag, no linux/amd64 entry, or a media type Train cannot run.
        """
        found = self.manifest(repo, reference)
        if found is None:
            raise image_error(f"{self.host}/{repo} has no '{reference}'")
        if found.media_type in MANIFEST_TYPES:
            return found
        if found.media_type not in INDEX_TYPES:
            raise image_error(f"{self.host}/{repo}:{reference} is a {found.media_type or 'untyped'} manifest; "
                              f"Train runs OCI or Docker v2 images and indexes")
        index = self.manifest(repo, found.digest, body=True)
        entries = json.loads(index.body or b"{}").get("manifests", []) if index is not None else []
        for entry in entries:
            platform = entry.get("platform") or {}
            if (platform.get("os"), platform.get("architecture")) == PLATFORM:
                if entry.get("mediaType") not in MANIFEST_TYPES:
                    raise image_error(f"the linux/amd64 entry of {self.host}/{repo}:{reference} is a "
                                      f"{entry.get('mediaType')} manifest")
                return Manifest(str(entry["mediaType"]), str(entry["digest"]))
        raise image_error(f"{self.host}/{repo}:{reference} has no linux/amd64 image")

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> None:
        reply = self._call("PUT", f"/v2/{repo}/manifests/{reference}", [_push(repo)],
                           headers={"Content-Type": manifest.media_type}, upload=_Upload(manifest.body))
        self._expect(reply, 201, f"writing manifest {repo}@{reference}")

    # ---- blobs --------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        reply = self._call("HEAD", f"/v2/{repo}/blobs/{digest}", [_pull(repo)])
        if reply.status == 404:
            return False
        self._expect(reply, 200, f"checking blob {digest} in {repo}")
        return True

    def open_blob(self, repo: str, digest: str) -> tuple[IO[bytes], int]:
        """The blob spooled to memory or disk, its digest checked; the caller closes it."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        reply = self._call("GET", f"/v2/{repo}/blobs/{digest}", [_pull(repo)], sink=spool)
        if reply.status != 200:
            spool.close()
        self._expect(reply, 200, f"reading blob {digest} from {repo}")
        spool.seek(0)
        hasher, size = hashlib.sha256(), 0
        while chunk := spool.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            spool.close()
            raise RegistryError(f"registry {self.host} sent blob {digest} with other content")
        spool.seek(0)
        return spool, size

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> str | None:
        """Ask for a cross-repository mount. None when mounted; else the upload URL the registry
        opened instead (it does not support mounts or does not hold the blob there)."""
        query = urllib.parse.urlencode({"mount": digest, "from": source_repo})
        reply = self._call("POST", f"/v2/{repo}/blobs/uploads/?{query}", [_push(repo), _pull(source_repo)],
                           upload=_Upload(b""))
        if reply.status == 201:
            return None
        self._expect(reply, 202, f"starting an upload to {repo}")
        return self._location(reply)

    def start_upload(self, repo: str) -> str:
        reply = self._call("POST", f"/v2/{repo}/blobs/uploads/", [_push(repo)], upload=_Upload(b""))
        self._expect(reply, 202, f"starting an upload to {repo}")
        return self._location(reply)

    def finish_upload(self, repo: str, location: str, digest: str, body: IO[bytes], size: int) -> None:
        """A monolithic upload: one PUT of the whole blob to the URL ``start_upload`` gave."""
        joiner = "&" if "?" in location else "?"
        url = f"{location}{joiner}{urllib.parse.urlencode({'digest': digest})}"
        reply = self._call("PUT", url, [_push(repo)], headers={"Content-Type": "application/octet-stream"},
                           upload=_Upload(body, size))
        self._expect(reply, 201, f"uploading blob {digest} to {repo}")

    # ---- transport ----------------------------------------------------------------------------

    def _location(self, reply: Reply) -> str:
        location = reply.header("Location")
        if not location:
            raise RegistryError(f"registry {self.host} opened an upload without a Location", retryable=False)
        return urllib.parse.urljoin(self.base + "/", location)

    def _expect(self, reply: Reply, status: int, doing: str) -> None:
        if reply.status == status:
            return
        detail = _error_text(reply.body)
        if reply.status in (401, 403):
            raise RegistryError(f"registry {self.host} refused {doing} (HTTP {reply.status}{detail})", retryable=False)
        raise RegistryError(f"registry {self.host} answered HTTP {reply.status} {doing}{detail}", retryable=False)

    def _call(
        self, method: str, path: str, scopes: list[str], *, headers: dict[str, str] | None = None,
        upload: _Upload | None = None, sink: IO[bytes] | None = None,
    ) -> Reply:
        url = path if path.startswith(("http://", "https://")) else self.base + path
        key = " ".join(sorted(scopes))
        reply = self._send(method, url, headers or {}, upload, sink, self._authorization.get(key))
        if reply.status != 401:
            return reply
        authorization = self._authorize(reply.header("WWW-Authenticate") or "", scopes)
        if authorization is None:
            return reply
        self._authorization[key] = authorization
        if sink is not None:
            sink.seek(0)
            sink.truncate()
        return self._send(method, url, headers or {}, upload, sink, authorization)

    def _authorize(self, challenge: str, scopes: list[str]) -> str | None:
        scheme, _, rest = challenge.partition(" ")
        params = dict(_PARAM.findall(rest))
        creds = self.credentials() if self.credentials is not None else None
        if scheme.lower() == "basic":
            return None if creds is None else "Basic " + b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme.lower() != "bearer" or "realm" not in params:
            return None
        wanted = list(dict.fromkeys([*scopes, *params.get("scope", "").split()]))
        if self.minter is not None:
            return "Bearer " + self.minter(parse_scopes(wanted))
        query = [("service", params["service"])] if "service" in params else []
        query += [("scope", s) for s in wanted if s]
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        auth = None if creds is None else "Basic " + b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        reply = self._send("GET", url, {}, None, None, auth)
        if reply.status != 200:
            raise RegistryError(f"the token service of registry {self.host} answered HTTP {reply.status}",
                                retryable=False)
        document: dict[str, Any] = json.loads(reply.body or b"{}")
        token = document.get("token") or document.get("access_token")
        return f"Bearer {token}" if token else None

    def _send(
        self, method: str, url: str, headers: dict[str, str], upload: _Upload | None, sink: IO[bytes] | None,
        authorization: str | None,
    ) -> Reply:
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))
            request = _request(method, url, headers, upload, authorization)
            self.traffic.requests += 1
            try:
                response: Any = self._opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                response = exc
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                last = _describe(exc)
                continue
            try:
                reply = self._read(response, sink)
            except (http.client.HTTPException, OSError) as exc:
                last = _describe(exc)
                continue
            if upload is not None:
                self.traffic.bytes_out += upload.size if not isinstance(upload.body, bytes) else len(upload.body)
            if reply.status >= 500 or reply.status == 429:
                last = f"HTTP {reply.status}"
                continue
            return reply
        raise RegistryError(f"registry {self.host} did not answer ({last}) after {self.attempts} attempts")

    def _read(self, response: Any, sink: IO[bytes] | None) -> Reply:
        with response:
            status = int(response.status if hasattr(response, "status") else response.code)
            if sink is not None and status == 200:
                sink.seek(0)
                sink.truncate()
                while chunk := response.read(_CHUNK):
                    sink.write(chunk)
                    self.traffic.bytes_in += len(chunk)
                return Reply(status, response.headers)
            body = response.read() or b""
            self.traffic.bytes_in += len(body)
            return Reply(status, response.headers, body)


def _request(
    method: str, url: str, headers: dict[str, str], upload: _Upload | None, authorization: str | None
) -> urllib.request.Request:
    data: Any = None
    sent = dict(headers)
    if upload is not None:
        if isinstance(upload.body, bytes) or upload.body is None:
            data = upload.body or b""
            sent["Content-Length"] = str(len(data))
        else:
            upload.body.seek(0)
            data = upload.body
            sent["Content-Length"] = str(upload.size)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # realms and Locations come from the registry
        raise RegistryError(f"a registry pointed Train at '{url[:100]}', which is not an http(s) URL", retryable=False)
    request = urllib.request.Request(url, data=data, headers=sent, method=method)  # noqa: S310 (checked above)
    if authorization:
        request.add_unredirected_header("Authorization", authorization)
    return request


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return f"{type(reason).__name__}: {reason}"[:200]


def _error_text(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return ""
    codes = ", ".join(str(e.get("code")) for e in errors if isinstance(e, dict))
    return f": {codes}" if codes else ""

