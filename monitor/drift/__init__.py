"""Drift engine core: summaries, reference profiles, two-sample tests, decisions, data quality,
concept drift. Pure functions and small mergeable classes; the daemon wires them in."""
