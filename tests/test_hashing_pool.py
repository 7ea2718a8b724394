"""modelsign._hashing's own thread pool: results in order, the first error raised."""

from __future__ import annotations

import threading

import pytest

from modelsign._hashing import _run_parallel


@pytest.mark.parametrize("workers", [1, 2, 4, 64])
def test_results_keep_the_order_of_the_items(workers: int) -> None:
    items = list(range(200))
    assert _run_parallel(lambda x: x * x, items, workers) == [x * x for x in items]


def test_work_is_spread_over_threads() -> None:
    seen: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def record(_: int) -> None:
        seen.add(threading.current_thread().name)
        barrier.wait()  # three items must run at once, or this times out

    _run_parallel(record, [0, 1, 2], 3)
    assert len(seen) == 3


@pytest.mark.parametrize("workers", [1, 3])
def test_an_error_is_raised_and_stops_new_items(workers: int) -> None:
    started: list[int] = []

    def fail_at_5(x: int) -> int:
        started.append(x)
        if x == 5:
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 5"):
        _run_parallel(fail_at_5, list(range(1000)), workers)
    assert 5 in started
    assert len(started) < 1000  # items after the failure were not all started


def test_no_items() -> None:
    assert _run_parallel(lambda x: x, [], 4) == []
