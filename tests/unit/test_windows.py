"""Event-time windows, watermark, late and out-of-order records; count windows."""

from __future__ import annotations

import numpy as np

from monitor.core.windows import EventWindows, group_rows
from slices.spec import WindowSpec


def test_tumbling_assignment_and_watermark():
    w = EventWindows(WindowSpec("time", 60.0, 10.0))
    starts, late = w.assign(np.array([5.0, 59.9, 60.0, 125.0]))
    assert starts.tolist() == [0.0, 0.0, 60.0, 120.0]
    assert not late.any()
    assert w.watermark == 115.0
    assert w.closable([0.0, 60.0, 120.0]) == [0.0]  # [60, 120) ends after 115


def test_out_of_order_within_lateness_is_not_late():
    w = EventWindows(WindowSpec("time", 60.0, 30.0))
    w.assign(np.array([80.0]))  # watermark 50: window [0, 60) still open
    _, late = w.assign(np.array([10.0]))
    assert not late.any()


def test_records_after_their_window_closed_are_late():
    w = EventWindows(WindowSpec("time", 60.0, 0.0))
    w.assign(np.array([130.0]))
    for start in w.closable([0.0, 60.0, 120.0]):
        w.mark_closed(start)
    _, late = w.assign(np.array([10.0, 70.0, 125.0, 200.0]))
    assert late.tolist() == [True, True, False, False]


def test_closed_window_stays_closed_when_watermark_is_behind():
    """A window closed by flush (end of replay) never reopens, whatever the watermark says."""
    w = EventWindows(WindowSpec("time", 60.0, 1000.0))
    w.assign(np.array([10.0]))
    w.mark_closed(0.0)
    _, late = w.assign(np.array([20.0]))
    assert late.tolist() == [True]


def test_records_of_one_batch_are_not_late_relative_to_each_other():
    w = EventWindows(WindowSpec("time", 60.0, 0.0))
    _, late = w.assign(np.array([500.0, 10.0]))
    assert not late.any()


def test_count_windows():
    w = EventWindows(WindowSpec("count", 3, 0.0))
    starts, late = w.assign(np.arange(5.0))
    assert starts.tolist() == [0, 0, 0, 1, 1] and not late.any()
    assert w.closable([0.0, 1.0]) == [0.0]
    starts, _ = w.assign(np.arange(2.0))
    assert starts.tolist() == [1, 2]
    assert w.closable([1.0, 2.0]) == [1.0]


def test_state_round_trip():
    w = EventWindows(WindowSpec("time", 60.0, 5.0))
    w.assign(np.array([100.0]))
    w.mark_closed(0.0)
    again = EventWindows(WindowSpec("time", 60.0, 5.0))
    again.load_state(w.to_state())
    assert again.to_state() == w.to_state()


def test_group_rows_is_a_stable_partition():
    keys = np.array([3, 1, 3, 2, 1, 3], dtype=np.int64)
    groups = group_rows(keys)
    assert [k for k, _ in groups] == [1, 2, 3]
    assert [rows.tolist() for _, rows in groups] == [[1, 4], [3], [0, 2, 5]]


def test_fractional_window_sizes_do_not_make_the_next_window_late():
    size = 300.006
    w = EventWindows(WindowSpec("time", size, 0.0))
    times = np.arange(0, 30 * size, 0.5)  # k * size + size > (k + 1) * size for k = 14, 17…
    late_total = 0
    for chunk in np.array_split(times, 40):
        _, late = w.assign(chunk)
        late_total += int(late.sum())
        for start in w.closable(sorted({float(s) for s in np.floor(chunk / size) * size})):
            w.mark_closed(start)
    assert late_total == 0


# ---- several partitions: the watermark is the minimum over them ----------------------------

def _two(lateness: float = 0.0):
    from monitor.core.windows import PartitionView

    view = PartitionView(live={"t:0", "t:1"})
    return view, EventWindows(WindowSpec("time", 60.0, lateness), view)


def test_a_partition_ahead_never_drags_another_ones_records_into_late():
    _, w = _two()
    w.assign(np.array([1000.0, 1100.0]), "t:0")  # t:0 read far ahead (a backlog)
    assert w.watermark == -np.inf  # t:1 not heard from yet: it holds the watermark
    _, late = w.assign(np.array([10.0, 20.0]), "t:1")
    assert not late.any()
    assert w.watermark == 20.0  # min(1100, 20) - 0
    _, late = w.assign(np.array([30.0, 500.0]), "t:1")
    assert not late.any() and w.watermark == 500.0
    assert w.closable([0.0, 60.0, 480.0, 1080.0]) == [0.0, 60.0]


def test_a_caught_up_partition_does_not_hold_the_watermark():
    view, w = _two()
    w.assign(np.array([10.0]), "t:1")
    w.assign(np.array([700.0]), "t:0")
    assert w.watermark == 10.0
    view.idle = {"t:1"}  # t:1 caught up: nothing left to read in it
    assert w.advance() == 700.0
    view.idle = {"t:0", "t:1"}  # every partition caught up: the most advanced one leads
    w.assign(np.array([800.0]), "t:0")
    assert w.watermark == 800.0
    view.idle = set()  # t:1 gets records again: the watermark never goes back
    assert w.advance() == 800.0


def test_an_empty_caught_up_partition_lets_windows_close():
    view, w = _two(lateness=5.0)
    view.idle = {"t:1"}  # nothing ever written to t:1
    w.assign(np.array([130.0]), "t:0")
    assert w.watermark == 125.0 and w.closable([0.0, 60.0, 120.0]) == [0.0, 60.0]


def test_a_partition_with_other_models_records_only_does_not_hold():
    view, w = _two()
    view.busy = {"t:0", "t:1"}  # both delivered records, t:0 none of this model
    w.assign(np.array([300.0]), "t:1")
    assert w.watermark == 300.0


def test_records_without_partition_move_no_event_time():
    _, w = _two()
    w.assign(np.array([50.0]), "t:0")
    w.assign(np.array([60.0]), "t:1")
    _, late = w.assign(np.array([5000.0]), None)  # e.g. released by the feature join
    assert not late.any() and w.watermark == 50.0 and w.partitions == {"t:0": 50.0,
                                                                        "t:1": 60.0}


def test_partition_event_times_are_part_of_the_state():
    view, w = _two()
    w.assign(np.array([50.0]), "t:0")
    w.assign(np.array([60.0]), "t:1")
    again = EventWindows(WindowSpec("time", 60.0, 0.0), view)
    again.load_state(w.to_state())
    assert again.partitions == {"t:0": 50.0, "t:1": 60.0}
    again.assign(np.array([200.0]), "t:0")
    assert again.watermark == 60.0
