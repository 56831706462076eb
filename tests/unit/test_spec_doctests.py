"""The runnable examples in the docstrings of the spec modules hold."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["slices.durations", "slices.predicate", "slices.assign",
                                  "slices.load"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
