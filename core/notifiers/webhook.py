"""Signed webhook POSTs with the standard library (``docs/webhooks.md`` is the receiver's side).

Each request carries ``Train-Delivery: <delivery id>`` and ``Train-Signature: t=<unix>,v1=<hex>``,
where ``hex`` is HMAC-SHA256 with the deployment's secret over ``<t>.<body>``. Redirects are not
followed (a 3xx is a failed delivery), every request has a timeout, and unless
``allow_private`` is set a URL whose host resolves to a loopback, private, link-local or
otherwise internal address is refused, so a job's ``notify.url`` cannot reach the deployment's
own network (cloud metadata endpoints included). Local mode allows them: receivers there are on
this machine.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from core.errors import DeliveryError

SIGNATURE_HEADER = "Train-Signature"
DELIVERY_HEADER = "Train-Delivery"
USER_AGENT = "Train-Webhooks/1"
DEFAULT_TOLERANCE = 300  # seconds a receiver accepts between the signature time and its clock


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Train-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, *, now: float | None = None,
           tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """What a receiver does: parse ``t`` and every ``v1``, recompute, compare in constant time,
    and refuse a timestamp further than ``tolerance`` seconds from ``now`` (replays)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    stamps = parts.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except OSError as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc.strerror or exc}") from exc


class WebhookNotifier:
    """``Notifier`` over urllib. ``secret`` signs every body; it is never logged or sent."""

    def __init__(self, secret: bytes, *, timeout: float = 5.0, allow_private: bool = False,
                 clock: Callable[[], float] = time.time, resolver: Resolver = _resolve) -> None:
        self._secret = secret
        self._timeout = timeout
        self._allow_private = allow_private
        self._clock = clock
        self._resolver = resolver
        self._opener = urllib.request.build_opener(_NoRedirects())

    def __repr__(self) -> str:
        return f"WebhookNotifier(timeout={self._timeout}, allow_private={self._allow_private})"

    def send(self, url: str, delivery_id: str, body: bytes) -> None:
        """POST one delivery. Raises ``DeliveryError`` unless the receiver answers 2xx."""
        host = self._check_target(url)
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 (http(s), checked)
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: delivery_id,
            SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body),
        })
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status = response.status
                response.read(1024)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"{host} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{host} unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{host} answered {status}")

    def _check_target(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise DeliveryError("webhook URLs must be http:// or https:// with a host")
        if not self._allow_private:
            for address in self._resolver(host):
                ip = ipaddress.ip_address(address.split("%")[0])
                if not ip.is_global or ip.is_multicast:
                    raise DeliveryError(f"{host} resolves to {ip}, an address webhooks may not reach")
        return host
