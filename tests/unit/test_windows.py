"""Event-time windows, watermark, late and out-of-order records; count windows."""

from __future__ import annotations

import numpy as np

from monitor.windows import EventWindows, group_rows
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
