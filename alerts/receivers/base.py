"""What every receiver shares: ``${ENV}`` substitution, the HTTP POST, error classification."""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from alerts.config import ReceiverSpec
from alerts.errors import DeliveryError, MissingEnvError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
USER_AGENT = "slicewatch-alerts/0.1"


def substitute(receiver: ReceiverSpec, field_name: str, text: str,
               env: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in ``text``; a missing variable raises :class:`MissingEnvError`.

    >>> r = ReceiverSpec(name="hook", type="webhook", url="x")
    >>> substitute(r, "url", "http://${H}/x", {"H": "127.0.0.1:9"})
    'http://127.0.0.1:9/x'
    """
    env = os.environ if env is None else env

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingEnvError(receiver.name, field_name, name)
        return env[name]

    return _ENV.sub(one, text)


@dataclass(frozen=True)
class Request:
    """A rendered HTTP request. ``repr`` shows neither the URL nor the headers (secrets)."""

    url: str = field(repr=False)
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    shown_url: str = ""  # the URL as written in the spec, safe to log


def post(request: Request, timeout: float, session: requests.Session | None = None) -> int:
    """POST ``request``; returns the 2xx status or raises :class:`DeliveryError`.

    429, 5xx and network errors are retryable; other statuses are not. Error messages name the
    URL as written in the spec, never the substituted one.
    """
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **request.headers}
    sender = session or requests
    try:
        resp = sender.post(request.url, data=request.body, headers=headers, timeout=timeout,
                           allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"POST {request.shown_url} failed: {type(exc).__name__}",
                            retryable=True) from None
    if 200 <= resp.status_code < 300:
        return resp.status_code
    body = resp.text[:2000]
    retryable = resp.status_code == 429 or resp.status_code >= 500
    raise DeliveryError(f"POST {request.shown_url} returned {resp.status_code}: {body[:300]}",
                        retryable=retryable, status=resp.status_code, body=body,
                        retry_after=retry_after(resp.headers.get("Retry-After")))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds in a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> retry_after("7"), retry_after(None), retry_after("soon")
    (7.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
