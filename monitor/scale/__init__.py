"""Scale-out on Kafka (issue #14): workers fold their source partitions into per-window
**partials** (deltas of the mergeable accumulator states), an evaluator merges them and
closes windows on the minimum watermark over all source partitions.

The core here is pure (no Kafka): :mod:`monitor.scale.partials` (the delta format, merge),
:mod:`monitor.scale.worker` (one source partition's fold), :mod:`monitor.scale.evaluator`
(merged windows, watermarks, close). The Kafka shell is :mod:`monitor.runtime.scale_run`.
See docs/scaling.md.
"""
