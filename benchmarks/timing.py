"""Wall-clock timing for the benchmarks: runs interleaved round by round, speed-ups as medians of
paired per-round ratios, so that drift in a shared machine's speed cancels out."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence


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


def chunked_seconds(runs: Mapping[str, Callable[[Sequence], object]], items: Sequence, rounds: int, chunk: int,
                    warmups: Mapping[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Seconds of every run over all of `items` in every round, where a round goes through
    `items` `chunk` at a time and runs every system on a chunk before the next (the order
    rotated from chunk to chunk). A round of many systems lasts a minute or more, and a shared
    machine's speed drifts by 20% within that: whole-round interleaving then measures the drift
    as often as the systems, chunks of a second or so do not. Only for work whose cost does not
    depend on how it is cut (batch 1: a chunk of sentences is the same calls as the whole)."""
    for name, run in runs.items():
        (warmups or {}).get(name, lambda run=run: run(items[:chunk]))()
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        gc.collect()
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                started = time.perf_counter()
                runs[name](part)
                spent[name] += time.perf_counter() - started
            turn += 1
        for name in names:
            seconds[name].append(spent[name])
    return seconds


def paired_speedup(reference: list[float], times: list[float]) -> float:
    """Median over rounds of reference time / time in the same round."""
    return statistics.median(r / t for r, t in zip(reference, times))
