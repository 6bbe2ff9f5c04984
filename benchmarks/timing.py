"""Wall-clock timing for the benchmarks: runs interleaved round by round, speed-ups as medians of
paired per-round ratios, so that drift in a shared machine's speed cancels out."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_seconds(runs: Mapping[str, Callable[[], object]], rounds: int,
                        warmups: Mapping[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Seconds of every run in every round; all runs once per round, in the same order. `warmups`
    (default: the runs themselves) go once first, for allocators, kernels and caches."""
    for warmup in (warmups or runs).values():
        warmup()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def paired_speedup(reference: list[float], times: list[float]) -> float:
    """Median over rounds of reference time / time in the same round."""
    return statistics.median(r / t for r, t in zip(reference, times))
