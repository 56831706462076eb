"""``slicewatch baseline build``: a reference profile from training (or any reference) data.

The data is read with the same schema, decoder and slicing as the daemon (JSONL, CSV or
Parquet in the spec's record shape), so the profile's features, prediction and label mean
exactly what the daemon will compare them with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.memory import release_free_memory
from monitor.core.packed import Packer
from monitor.core.prepare import Preparer
from monitor.core.reference import reference_metrics
from monitor.core.types import RecordBatch
from monitor.drift.profile import Profile, build_profile, save_profile
from monitor.ingest.decode_models import decoder_for
from monitor.ingest.file import FileSource
from monitor.runtime.progress import input_bar, tracked
from slices.assign import SliceAssigner
from slices.codes import coded
from slices.errors import SlicewatchError
from slices.spec import ModelSpec, Spec

pd = lazy_module("pandas")


@dataclass(frozen=True)
class BaselineReport:
    model: str
    rows: int
    rejected: int
    slices: int
    path: str


def read_reference(spec: Spec, paths: list[str], *,
                   quiet: bool = True) -> tuple[RecordBatch, int]:
    """Every usable record of ``paths`` (decoded like the daemon does) and the reject count;
    a progress bar on stderr unless ``quiet`` (and only on a terminal)."""
    decoder = decoder_for(spec)
    rejected = 0
    source = FileSource(paths, batch_size=READ_BATCH)
    packer = Packer(_parquet_rows(source.paths), first=_drift_numeric(spec))
    for chunk in tracked(source.chunks(), source.paths,
                         input_bar("reference data", source.paths, quiet=quiet)):
        if chunk.kind == "lines":
            batch, rejects = decoder.decode_lines(chunk.payload)
        else:
            batch, rejects = decoder.decode_frame(chunk.payload)
        packer.add(_shared_strings(batch))  # copied in (Parquet): the batch is freed here
        rejected += len(rejects)
    release_free_memory()
    batch = packer.finish()
    release_free_memory()  # the decoded batches' memory, before the profile is built
    return batch, rejected


READ_BATCH = 8_192
"""Records decoded at a time: a Parquet reference is copied into its packed columns batch by
batch, so the read holds one batch beside them (the read's peak RSS on the peers reference
of bench/peers: 4 096 rows a batch 161 MiB, 8 192 166 MiB, 16 384 173 MiB, the same CPU
but at 4 096; earlier, before packing while reading: 10k ≈ 250, 50k ≈ 257, 100k ≈ 262)."""


def _parquet_rows(paths: list[str]) -> int | None:
    """The rows of ``paths`` when all are Parquet files (their metadata), else None."""
    if not paths or not all(p.lower().endswith((".parquet", ".pq")) for p in paths):
        return None
    import pyarrow.parquet as pq

    try:
        return sum(int(pq.ParquetFile(p).metadata.num_rows) for p in paths)
    except (OSError, ValueError):
        return None


def _drift_numeric(spec: Spec) -> list[str]:
    """The numeric features drift watches, in the order the summaries fold them (the first
    model's first): :func:`pack` lays them out as rows of one matrix, in that order."""
    out: list[str] = []
    for m in spec.models:
        for name in m.drift.features or tuple(f.name for f in m.features):
            f = m.feature(name)
            if f is not None and f.type == "numeric" and name not in out:
                out.append(name)
    return out


def _shared_strings(batch: RecordBatch) -> RecordBatch:
    """``batch`` with each text feature column holding one ``str`` object per distinct value
    (the decoder makes one per cell): the reference is held whole, and 200k rows × 8
    categorical features are ≈ 70 MiB of duplicate strings. Values are unchanged (a column
    with any non-text value is left as it is)."""
    for name, col in batch.features.items():
        if col.dtype != object or not len(col) or coded(col) is not None:
            continue  # coded by the decoder: one object per value already
        try:
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
        except TypeError:  # unhashable values (lists, dicts)
            continue
        if not len(uniques) or not all(type(u) is str for u in uniques):
            continue  # no text (every value missing: nothing to share), or not all text
        shared = np.asarray(uniques, dtype=object)[codes]
        missing = codes < 0
        shared[missing] = col[missing]  # None / NaN as they were
        batch.features[name] = shared
    return batch


def profile_for(model: ModelSpec, batch: RecordBatch, *, source: str, seed: int = 0,
                bins: int | None = None) -> Profile:
    """The profile of ``model`` from its records in ``batch`` (per slice when the spec's
    ``drift.per_slice`` is on: one reference per slice value, with the overall bins), with
    the reference's metrics of every slice (:func:`reference_metrics`)."""
    ours = batch.model == model.name
    mine = batch if ours.all() else batch.take(ours)  # one model: no copy of the reference
    if not len(mine):
        raise SlicewatchError(f"the reference data has no records of model {model.name!r}")
    preparer = Preparer(model)
    cols = preparer.columns(mine)
    slices = None
    if model.drift.per_slice:
        slices = {}
        for sc in SliceAssigner(model).assign(mine):
            for label, rows in sc.groups():
                slices[label] = np.asarray(rows)
    versions = sorted(set(mine.version.tolist()) - {""})
    kwargs = {"bins": bins} if bins else {}
    profile = build_profile(model, cols, source=source, seed=seed, slices=slices,
                            classes=preparer.classes if model.task == "multiclass" else None,
                            model_version=",".join(versions) or None, **kwargs)
    profile.metrics = reference_metrics(model, mine, preparer)
    return profile


def build_baselines(spec: Spec, data: list[str], out: str,
                    model_name: str | None = None, *,
                    quiet: bool = True) -> list[BaselineReport]:
    """Build and save the profile of each model (or of ``model_name``). With several models,
    ``out`` may contain ``{model}``. ``quiet=False``: a progress bar while reading (on a
    terminal)."""
    models = [m for m in spec.models if model_name in (None, m.name)]
    if not models:
        raise SlicewatchError(f"model {model_name!r} is not in the spec")
    if len(models) > 1 and "{model}" not in out:
        raise SlicewatchError("the spec has several models: put {model} in the output path "
                              "or pass --model")
    batch, rejected = read_reference(spec, data, quiet=quiet)
    if rejected and not len(batch):
        raise SlicewatchError(f"all {rejected} reference record(s) were rejected; `slicewatch "
                              "run -c SPEC -i DATA --listen ''` says why (per reason)")
    reports = []
    for model in models:
        profile = profile_for(model, batch, source=",".join(data))
        path = out.replace("{model}", model.name)
        save_profile(profile, path)
        reports.append(BaselineReport(model.name, int((batch.model == model.name).sum()),
                                      rejected, len(profile.slices), path))
    return reports
