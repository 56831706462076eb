"""Fault and bad-input tests: each tries to break one promise of the README.

Tests here that need the real services (Kafka, Prometheus, Alertmanager) use the fixtures of
tests/integration/conftest.py, re-exported below, and are marked `integration` like those.
"""

from __future__ import annotations

from tests.integration.conftest import *  # noqa: F403 (the real-service fixtures)
