"""The runnable examples in the docstrings of the drift modules and the group layers."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["monitor.drift.summary", "monitor.drift.profile", "monitor.drift.statistics",
           "monitor.drift.concept", "monitor.grouped"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
