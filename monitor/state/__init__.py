"""Checkpoints: the durable state of a run, as plain versioned data."""
