"""Push a batch run's final metrics to a Prometheus Pushgateway.

A replay or backfill is a batch job: it ends before Prometheus would scrape it, so it pushes
its final registry once, grouped by ``job`` and ``model`` as Prometheus recommends for batch
jobs (``PUT /metrics/job/<job>/model/<model>`` replaces that group). The daemon itself is
scraped, not pushed.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.exposition import push_to_gateway as _push
from prometheus_client.registry import CollectorRegistry

from slices.errors import SlicewatchError
from slices.spec import Spec

DEFAULT_JOB = "slicewatch"


def grouping_key(spec: Spec) -> dict[str, str]:
    """``{"model": …}`` — the spec's model names joined by ``,`` when it has several."""
    return {"model": ",".join(sorted(m.name for m in spec.models))}


def push_to_gateway(url: str, spec: Spec, registry: CollectorRegistry, *,
                    job: str = DEFAULT_JOB, timeout: float = 10.0,
                    handler: Callable | None = None) -> dict[str, str]:
    """PUT every family of ``registry`` to the Pushgateway at ``url`` under job + model.

    ``registry`` is the run's registry (the daemon's :class:`SlicewatchCollector`); the
    pushed group replaces the previous push of the same job and model. Returns the grouping
    key used (job included). Raises :class:`SlicewatchError` naming the URL when the
    Pushgateway cannot be reached or refuses the push.
    """
    key = grouping_key(spec)
    kwargs = {"handler": handler} if handler is not None else {}
    try:
        _push(url, job=job, registry=registry, grouping_key=key, timeout=timeout, **kwargs)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise SlicewatchError(f"push to Pushgateway {url} (job={job}, model={key['model']}) "
                              f"failed: {exc}") from exc
    return {"job": job, **key}
