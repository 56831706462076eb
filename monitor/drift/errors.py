"""Errors of the drift engine. All derive from :class:`slices.errors.SlicewatchError`."""

from __future__ import annotations

from slices.errors import SlicewatchError


class DriftError(SlicewatchError):
    """A drift computation that cannot be done as asked (mismatched bins, unknown test, …)."""


class ProfileError(DriftError):
    """A reference profile that cannot be built, read or used."""


class DriftParamError(DriftError, ValueError):
    """A bad parameter (test override, detector parameter); the message names it."""
