"""The per-model stage protocol (:mod:`monitor.core.stage`): the pipeline calls its stages in
order (before → accumulators for new groups → after), tells them which records went to which
group, and hands them restored accumulators; a window's state round-trips on its own."""

from __future__ import annotations

import numpy as np
import orjson

from monitor.core.metrics.registry import REGISTRY
from monitor.core.pipeline import Folded, ModelPipeline
from monitor.core.types import RecordBatch
from monitor.core.windows import Window
from monitor.ingest.decode_models import decoder_for
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {country: categorical}
    slices:
      - overall: true
      - feature_keys: [country]
"""


class Recorder:
    """A stage that records every call; its one accumulator counts labelled records."""

    def __init__(self):
        self.calls: list[tuple] = []

    def before(self, cols):
        self.calls.append(("before", len(cols)))

    def accumulators(self, slice_name):
        self.calls.append(("accumulators", slice_name))
        return [REGISTRY["label_count"]()]

    def after(self, groups, cols, times):
        self.calls.append(("after", sorted((g.window, g.version, g.slice_label,
                                            tuple(times[g.rows].tolist())) for g in groups)))

    def restored(self, accumulators):
        self.calls.append(("restored", [a.kind for a in accumulators]))


def _batch(times, countries, labels) -> RecordBatch:
    lines = [orjson.dumps({"model": "m", "model_version": "v1", "prediction_id": str(i),
                           "timestamp": t, "features": {"country": c},
                           "prediction": {"score": 0.7}, "label": y})
             for i, (t, c, y) in enumerate(zip(times, countries, labels, strict=True))]
    batch, rejects = decoder_for(load_spec_text(SPEC)).decode_lines(lines)
    assert not rejects
    return batch


def _pipeline(stage):
    return ModelPipeline(load_spec_text(SPEC).models[0], stages=[stage])


def test_stage_calls_in_order_with_the_rows_of_each_group():
    stage = Recorder()
    pipe = _pipeline(stage)
    folded = pipe.process(_batch([1.0, 2.0, 65.0], ["US", "BR", "US"], [1, 0, 1]))
    assert isinstance(folded, Folded)
    assert folded.starts.tolist() == [0.0, 0.0, 60.0] and not folded.late.any()
    kinds = [c[0] for c in stage.calls]
    assert kinds[0] == "before" and stage.calls[0][1] == 3
    assert kinds[-1] == "after" and set(kinds[1:-1]) == {"accumulators"}
    assert sorted(c[1] for c in stage.calls[1:-1]) == ["country"] * 3 + ["overall"] * 2
    assert stage.calls[-1][1] == sorted([
        (0.0, "v1", "overall", (1.0, 2.0)), (0.0, "v1", "country=US", (1.0,)),
        (0.0, "v1", "country=BR", (2.0,)), (60.0, "v1", "overall", (65.0,)),
        (60.0, "v1", "country=US", (65.0,))])
    # the stage's accumulator sits after the metrics, in every group
    assert [w.key for w in folded.closed] == [0.0]  # the watermark passed it
    group = folded.closed[0].groups[("v1", "overall", "overall")]
    assert group.accumulators[-1].kind == "label_count" and group.accumulators[-1].labelled == 2


def test_late_records_are_reported_not_folded_and_not_shown_to_stages():
    stage = Recorder()
    pipe = _pipeline(stage)
    pipe.process(_batch([200.0], ["US"], [1]))
    stage.calls.clear()
    folded = pipe.process(_batch([5.0, 201.0], ["US", "US"], [1, 1]))
    assert folded.late.tolist() == [True, False]
    assert stage.calls[0] == ("before", 1)


def test_pipeline_state_round_trips_and_stages_get_restored_accumulators():
    stage = Recorder()
    pipe = _pipeline(stage)
    pipe.process(_batch([1.0, 2.0, 30.0], ["US", "BR", "US"], [1, 0, 1]))
    state = pipe.to_state()
    again_stage = Recorder()
    again = _pipeline(again_stage)
    again.load_state(state)
    assert again.to_state() == state
    restored = [c for c in again_stage.calls if c[0] == "restored"]
    assert len(restored) == 3 and all(c[1][-1] == "label_count" for c in restored)
    window = again.open[0.0]
    assert Window.from_state(window.to_state()).to_state() == window.to_state()
    assert window.groups[("v1", "country", "country=US")].count == 2
    assert np.isclose(window.first_time, 1.0) and window.records == 3
