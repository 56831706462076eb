"""The core: record batches, windows, per-model pipeline, joins, evaluation, kernels."""
