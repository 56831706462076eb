"""What every receiver shares: ``${ENV}`` substitution, the HTTP POST (with a deadline on the
whole request), error classification."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import os
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from alerts.errors import DeliveryError, MissingEnvError
from slices.alerting import ReceiverSpec

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
USER_AGENT = "slicewatch-alerts/0.1"
MAX_BODY = 2000  # bytes of a response body kept for the error message
# The only fields where ${NAME} is expanded: those that carry credentials (see
# slices.alerting.EXPANDED_FIELDS); header values are headers.<name>.
EXPANDED = ("url", "secret", "routing_key")


def substitute(receiver: ReceiverSpec, field_name: str, text: str,
               env: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in ``text``; a missing variable raises :class:`MissingEnvError`.
    Only credential fields (``url``, ``secret``, ``routing_key``, ``headers.*``) are
    expanded; anything else is returned as written.

    >>> r = ReceiverSpec(name="hook", type="webhook", url="x")
    >>> substitute(r, "url", "http://${H}/x", {"H": "127.0.0.1:9"})
    'http://127.0.0.1:9/x'
    >>> substitute(r, "source", "${H}", {"H": "x"})
    '${H}'
    """
    if field_name not in EXPANDED and not field_name.startswith("headers."):
        return text
    env = os.environ if env is None else env

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingEnvError(receiver.name, field_name, name)
        return env[name]

    return _ENV.sub(one, text)


def expanded_values(receiver: ReceiverSpec, env: Mapping[str, str] | None = None
                    ) -> tuple[str, ...]:
    """The values ``${NAME}`` references of ``receiver`` expand to (to keep them out of error
    messages), longest first."""
    env = os.environ if env is None else env
    texts = [receiver.url, receiver.secret or "", receiver.routing_key or "",
             *receiver.headers.values()]
    values = {env[n] for t in texts for n in _ENV.findall(t) if env.get(n)}
    return tuple(sorted(values, key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for value in secrets:
        text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class Request:
    """A rendered HTTP request. ``repr`` shows neither the URL nor the headers (secrets)."""

    url: str = field(repr=False)
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    shown_url: str = ""  # the URL as written in the spec, safe to log


def post(request: Request, timeout: float, secrets: tuple[str, ...] = ()) -> int:
    """POST ``request``; returns the 2xx status or raises :class:`DeliveryError`.

    ``timeout`` is a deadline on the whole request — connect, send, status line, headers and
    the (first :data:`MAX_BODY` bytes of the) body — not on each read: a server that
    trickles its answer is cut off when the deadline passes. 429, 5xx, network errors and a
    passed deadline are retryable; other statuses are not. Error messages name the URL as
    written in the spec, never the substituted one, and ``secrets`` are scrubbed from the
    response body they quote. HTTP(S) proxies are taken from the environment
    (``https_proxy``, ``no_proxy``…) as by ``urllib``.
    """
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **request.headers}
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"POST {request.shown_url}: not an http(s) URL", retryable=False)
    deadline = time.monotonic() + timeout
    conn, target = _connection(parts, timeout)
    watchdog = threading.Timer(timeout, _abort, (conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.connect()
        if time.monotonic() >= deadline:
            raise TimeoutError
        conn.request("POST", target, body=request.body, headers=headers)
        resp = conn.getresponse()
        body = resp.read(MAX_BODY).decode("utf-8", "replace")
        status, retry = resp.status, resp.getheader("Retry-After")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        why = (f"no complete answer within the {timeout:g} s deadline"
               if time.monotonic() >= deadline - 0.001 else type(exc).__name__)
        raise DeliveryError(f"POST {request.shown_url} failed: {why}", retryable=True) from None
    finally:
        watchdog.cancel()
        conn.close()
    if 200 <= status < 300:
        return status
    body = scrub(body, secrets)
    retryable = status == 429 or status >= 500
    raise DeliveryError(f"POST {request.shown_url} returned {status}: {body[:300]}",
                        retryable=retryable, status=status, body=body,
                        retry_after=retry_after(retry))


def _connection(parts, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the URL's host (or its proxy) and the request target."""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = None
    if not urllib.request.proxy_bypass(parts.hostname):
        proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy:
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if not https:  # a plain-HTTP proxy takes the absolute URL
            return (http.client.HTTPConnection(p.hostname, p.port or 80, timeout=timeout),
                    f"http://{parts.hostname}:{port}{target}")
        conn = http.client.HTTPSConnection(p.hostname, p.port or 80, timeout=timeout,
                                           context=_tls())
        conn.set_tunnel(parts.hostname, port)  # CONNECT through the proxy, TLS end to end
        return conn, target
    if https:
        return http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                           context=_tls()), target
    return http.client.HTTPConnection(parts.hostname, port, timeout=timeout), target


def _tls() -> ssl.SSLContext:
    try:
        import certifi  # the CA bundle requests uses

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


def _abort(conn: http.client.HTTPConnection) -> None:
    """The deadline passed: shut the socket down, so a blocked read returns at once."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


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
