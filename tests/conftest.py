"""Suite-wide settings.

Hypothesis runs derandomised (the same examples every run, from a seed derived from each
test) and without per-example deadlines: a red CI must mean a real defect, never an unlucky
draw or a loaded machine. Set HYPOTHESIS_PROFILE=explore to search with fresh random seeds.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _no_leftover_daemons():
    """Daemons a test started through tests/integration/test_kafka_source.Daemon_ are killed
    after it, passed or failed."""
    yield
    module = sys.modules.get("tests.integration.test_kafka_source")
    if module is not None:
        module.kill_leftovers()


@pytest.fixture
def boom(monkeypatch):
    """Processing raises, after part of the batch is folded, for a batch holding an id that
    starts with 'boom' (the processing-fault tests of --role all and --role worker)."""
    from monitor.core import pipeline

    real = pipeline.ModelPipeline._accumulate

    def accumulate(self, batch, starts, **kw):
        real(self, batch, starts, **kw)
        if any(str(x).startswith("boom") for x in batch.id):
            raise RuntimeError("injected fault")

    monkeypatch.setattr(pipeline.ModelPipeline, "_accumulate", accumulate)


@pytest.fixture(scope="session")
def replayed_history(tmp_path_factory):
    """One replay of the demo's fraud stream with ``--results`` (8 windows of 1500 records,
    drift injected half-way), shared read-only by the report, results-format and browser
    tests: ``{"results", "profile", "spec", "data"}`` paths (tests/report_fixture.py)."""
    from tests.report_fixture import replay_history

    return replay_history(tmp_path_factory.mktemp("history"), windows=8, per_window=1500)
