"""The bound on label values (a slice, a version): 1024 characters, wherever they are kept.

A record's feature value or version can be a megabyte; as a slice label it would be one in
every series, results line, alert and notification. ``/metrics`` leaves such series out
(:mod:`monitor.export.collector`); the results history and the alerts, which must not lose
a window or an alert, keep the value cut by :func:`cut_label`: its start, its length and a
digest of the whole, so two long values stay two labels.

>>> cut_label("US")
'US'
>>> v = cut_label("x" * 5000)
>>> len(v) <= MAX_LABEL_CHARS, v[-50:]
(True, 'xxxxxxx…[5000 characters, sha256 c59d3c0480cc2d71]')
"""

from __future__ import annotations

import hashlib

MAX_LABEL_CHARS = 1024


def cut_label(value: str) -> str:
    """``value`` if it has at most :data:`MAX_LABEL_CHARS` characters, else its start followed
    by ``…[N characters, sha256 <16 hex digits>]``, :data:`MAX_LABEL_CHARS` long at most."""
    if len(value) <= MAX_LABEL_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    tail = f"…[{len(value)} characters, sha256 {digest}]"
    return value[:MAX_LABEL_CHARS - len(tail)] + tail


def is_long(value: object) -> bool:
    """True for a string over :data:`MAX_LABEL_CHARS` characters."""
    return isinstance(value, str) and len(value) > MAX_LABEL_CHARS
