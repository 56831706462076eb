"""The suite's waiting helper (tests/wait.py): returns the first truthy value, fails naming
what it waited for after the deadline, and lets the predicate fail at once."""

from __future__ import annotations

import doctest
import time

import pytest

import tests.wait
from tests.wait import wait_until


def test_doctests():
    assert doctest.testmod(tests.wait).failed == 0


def test_returns_the_first_truthy_value():
    values = iter([0, None, [], "ready", "later"])
    assert wait_until(lambda: next(values), timeout=60, what="x", interval=0) == "ready"


def test_fails_after_the_deadline_naming_what_and_detail():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"^windows closed: not true after 0.2 s \(log\)$"):
        wait_until(lambda: False, timeout=0.2, what="windows closed", interval=0.01,
                   detail=lambda: "log")
    assert time.monotonic() - t0 >= 0.2


def test_the_predicate_may_fail_at_once():
    def died():
        raise AssertionError("the daemon exited")

    with pytest.raises(AssertionError, match="the daemon exited"):
        wait_until(died, timeout=60, what="x")
