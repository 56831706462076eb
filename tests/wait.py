"""Waiting in tests: on conditions, with deadlines generous enough for a loaded CI machine.

A test never sleeps for a fixed time to let something happen; it polls the condition with
:func:`wait_until`, whose deadline only bounds how long a broken run takes to fail. The
deadlines below are for a 2-core machine kept busy by other work (``scripts/cpu-burn``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE = 120.0  # s: a process, a scrape, a broker, a window — anything waited for
HTTP_TIMEOUT = 60.0  # s: one request to a local server (a daemon busy replaying, Prometheus)


def wait_until(predicate: Callable[[], T], timeout: float = DEADLINE, *, what: str,
               interval: float = 0.2, detail: Callable[[], str] | None = None) -> T:
    """Poll ``predicate()`` until it returns a truthy value and return that value; after
    ``timeout`` seconds raise AssertionError naming ``what`` and the last value (or
    ``detail()``, e.g. a daemon's log). The predicate may itself raise to fail at once.

    >>> wait_until(lambda: 42, what="the answer")
    42
    >>> wait_until(lambda: [], timeout=0, what="a non-empty list")
    Traceback (most recent call last):
    ...
    AssertionError: a non-empty list: not true after 0 s (last value: [])
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            why = detail() if detail is not None else f"last value: {value!r}"
            raise AssertionError(f"{what}: not true after {timeout:g} s ({why})")
        time.sleep(interval)
