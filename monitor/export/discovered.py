"""``/metrics`` families of discovered slices (issue 17): the last closed window's top-k per
model × version, so at most ``top_k`` series per model × version and family."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.export.snapshot import Snapshot

DISCOVERED_LABELS = ["model", "version", "rank", "slice"]


def discovered_families(s: Snapshot) -> Iterator[Metric]:
    error = GaugeMetricFamily("slicewatch_discovered_slice_error", "Mean error (the model's "
                              "discovery error signal) of a slice discovered significantly "
                              "worse than the rest of the last closed window; rank 1 = "
                              "highest SliceLine score.", labels=DISCOVERED_LABELS)
    records = GaugeMetricFamily("slicewatch_discovered_slice_records", "Labelled records of "
                                "the discovered slice in the last closed window.",
                                labels=DISCOVERED_LABELS)
    for model in sorted(s.discovered):
        for d in s.discovered[model]:
            if d.scope != "window":
                continue
            labels = [d.model, d.version, str(d.rank), d.slice]
            error.add_metric(labels, d.error)
            records.add_metric(labels, float(d.records))
    yield error
    yield records
