"""Timestamps as receivers want them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso8601(ts: float) -> str:
    """UTC ISO 8601 with milliseconds: ``iso8601(0) == '1970-01-01T00:00:00.000Z'``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
