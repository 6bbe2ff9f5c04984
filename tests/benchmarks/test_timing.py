"""benchmarks/timing.py: chunked interleaving runs every system on every item once per round."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from timing import chunked_seconds, paired_speedup  # noqa: E402


def test_chunked_seconds_covers_every_item_once_per_round_in_rotating_order():
    calls: list[tuple[str, tuple[int, ...]]] = []
    runs = {name: (lambda part, name=name: calls.append((name, tuple(part)))) for name in ("a", "b", "c")}
    warmups = {name: (lambda: None) for name in runs}
    seconds = chunked_seconds(runs, list(range(7)), rounds=2, chunk=3, warmups=warmups)
    assert {name: len(times) for name, times in seconds.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(t >= 0 for times in seconds.values() for t in times)
    for name in runs:  # each system saw items 0..6 once per round, in order, three at a time
        parts = [part for who, part in calls if who == name]
        assert parts == [(0, 1, 2), (3, 4, 5), (6,)] * 2
    firsts = [calls[i][0] for i in range(0, len(calls), 3)]  # who went first on each chunk
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_chunked_seconds_warms_up_on_the_first_chunk_by_default():
    seen: list[int] = []
    chunked_seconds({"a": lambda part: seen.append(len(part))}, list(range(10)), rounds=1, chunk=4)
    assert seen == [4, 4, 4, 2]  # the warm-up, then the round


def test_paired_speedup_is_the_median_of_per_round_ratios():
    assert paired_speedup([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == 3.0
