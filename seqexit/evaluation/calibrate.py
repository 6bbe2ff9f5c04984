"""Calibration: measure a grid of early-exit policies on labelled dev data and pick the ones
that meet an accuracy or speed bound, as named presets (see `seqexit.exits.presets`).

Thresholds do not transfer between models (each model's exits are confident differently), so a
model's presets are measured on that model, against its own full-depth score on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from tqdm.auto import tqdm

from ..data import Sentence
from ..exits import ExitPolicy, Preset, check_preset_name, run_policy
from ..exits.criteria import COUNTING, CRITERIA
from ..cascade import attach_first_stage, first_stage_of, first_stage_reused
from ..model import MultiExitTagger
from ..quantize import check_quantize
from ..runtime import apply_runtime
from .exits import PolicyScore, evaluate_policy

ACCURATE_DROP = 0.1  # points of score the "accurate" preset may lose against full depth
BALANCED_DROP = 1.0
FAST_DROP = 3.0
NAMED_DROPS: dict[str, float] = {"accurate": ACCURATE_DROP, "balanced": BALANCED_DROP, "fast": FAST_DROP}
DEFAULT_NAME = "calibrated"
DEFAULT_MAX_DROP = BALANCED_DROP
DEFAULT_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
# per criterion other than entropy: the thresholds (or N, for patience and rising) calibrated over
CRITERION_SETTINGS: dict[str, tuple[float, ...]] = {
    "confidence": (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99),
    "patience": (1, 2, 3),
    "rising": (1, 2, 3),
    "vote": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "learned": (0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
    "signals": (0.9, 0.95, 0.98, 0.99, 0.993, 0.996, 0.998),
}
DEFAULT_WINDOWS = (0, 1, 2)
DEFAULT_MODES = ("tokee", "sentee")
AGAINST_FULL_DEPTH = "labels: the model's own full depth"  # how label-free presets name their references
CALIBRATION_MODES = ("tokee", "sentee", "static", "cascade")
# cascade: the first stage's doubt at or above which a sentence goes on to the model
CASCADE_THRESHOLDS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_EPS = 1e-9  # scores are percentages from float sums: a bound met exactly counts as met


@dataclass
class CalibrationResult:
    """Everything one calibration measured and picked.

    full: the full-depth score (speed-up 1 by definition) of the float model; rows: every
    policy evaluated (on the int8 engine when quantized), full depth first; presets: the named picks by name, the user's `chosen` one included.
    """

    full: PolicyScore
    rows: list[PolicyScore]
    presets: dict[str, Preset]
    chosen: Preset

    @property
    def full_score(self) -> float:
        return self.full.score

    @property
    def metric(self) -> str:
        return self.full.metric


def calibration_grid(
    num_layers: int,
    *,
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    windows: Iterable[int] = DEFAULT_WINDOWS,
    modes: Iterable[str] = DEFAULT_MODES,
    min_layer: int = 1,
    criterion: str = "entropy",
) -> list[ExitPolicy]:
    """The early-exit policies to try: every (mode, window, threshold) for tokee/sentee, and
    static exits at layers 1..L-1 when "static" is among `modes` (full depth is always scored
    separately, so "full" adds nothing; "cascade" candidates are built by `calibrate`, which
    knows the model's first stage). For a criterion other than entropy the thresholds (or
    N) are that criterion's own (CRITERION_SETTINGS) unless given."""
    thresholds, windows, modes = list(thresholds), list(windows), list(modes)
    unknown = [m for m in modes if m not in CALIBRATION_MODES + ("full",)]
    if unknown:
        raise ValueError(f"calibration modes must be among {', '.join(CALIBRATION_MODES)}, not {', '.join(map(repr, unknown))}")
    policies: list[ExitPolicy] = []
    for mode in dict.fromkeys(modes):
        if mode == "cascade":
            continue
        if mode == "static":
            policies += [ExitPolicy.static(layer) for layer in range(1, num_layers)]
        elif mode != "full" and criterion in COUNTING:
            policies += [ExitPolicy(mode=mode, window=k, min_layer=min_layer, criterion=criterion, patience=int(n))
                         for k in windows for n in thresholds]
        elif mode != "full":
            policies += [ExitPolicy(mode=mode, threshold=t, window=k, min_layer=min_layer, criterion=criterion)
                         for k in windows for t in thresholds]
    return list(dict.fromkeys(policies))


def pick_within_drop(rows: Sequence[PolicyScore], full_score: float, max_drop: float) -> PolicyScore | None:
    """The fastest (highest FLOPs speed-up; then most accurate) row scoring at least
    full_score - max_drop; None when no row does."""
    eligible = [r for r in rows if math.isfinite(r.flops_speedup) and r.score >= full_score - max_drop - _EPS]
    return max(eligible, key=lambda r: (r.flops_speedup, r.score), default=None)


def pick_at_speedup(rows: Sequence[PolicyScore], speedup: float) -> PolicyScore | None:
    """The most accurate (then fastest) row with a FLOPs speed-up of at least `speedup`; None
    when no row is that fast."""
    eligible = [r for r in rows if math.isfinite(r.flops_speedup) and r.flops_speedup >= speedup - _EPS]
    return max(eligible, key=lambda r: (r.score, r.flops_speedup), default=None)


def calibrate(
    model: MultiExitTagger,
    sentences: Sequence[Sentence],
    *,
    max_drop: float | None = None,
    speedup: float | None = None,
    name: str = DEFAULT_NAME,
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    windows: Iterable[int] = DEFAULT_WINDOWS,
    modes: Iterable[str] = DEFAULT_MODES,
    min_layer: int = 1,
    batch_size: int = 32,
    data: str | None = None,
    progress: bool = False,
    quantize: str | None = None,
    criterion: str = "entropy",
    runtime: str | None = "auto",
    suffix: bool | None = None,
) -> CalibrationResult:
    """Score full depth and every policy of the grid on gold-tagged `sentences`, then pick:

    with `max_drop` (points; the default, 1.0, when neither bound is given): the policy with the
    highest FLOPs speed-up whose score is >= full_score - max_drop; with `speedup`: the most
    accurate policy whose FLOPs speed-up is >= speedup. Full depth is a candidate like any other
    row, so an early-exit policy is only picked where it beats full depth on the bound's terms;
    where nothing meets the bound the pick falls back to full depth with `fallback` set.

    The pick is stored under `name`; "accurate", "balanced" and "fast" (the fastest policies
    within NAMED_DROPS points) are always built too. `data` is recorded in the presets.

    quantize="int8": the grid (int8 full depth included) runs on an int8 copy of the float
    `model`, and every drop is measured against the float model's full depth, so an int8
    preset's drop is what int8 and early exit cost together. `full` is then the float row.

    criterion: the exit criterion of the grid; the built-in names then carry it as a suffix
    ("balanced-confidence"), so presets of several criteria live side by side. suffix: True
    names them so for entropy too ("balanced-entropy"), False for no criterion (its picks become
    the model's accurate, balanced and fast); None: suffixed unless entropy.

    runtime: what runs the grid's layers ('torch', 'onnx' or 'auto', see `seqexit.runtime`);
    fp32 gives the same labels on either, int8 nearly (its rounding differs by kernel).

    A model with a cascade first stage (`seqexit.cascade`) also has cascades measured (when
    `modes` is the default or names "cascade"): every routing threshold of CASCADE_THRESHOLDS,
    sending sentences on to full depth and to the grid's fastest policy within ACCURATE_DROP.
    """
    if max_drop is not None and speedup is not None:
        raise ValueError("give either max_drop or speedup, not both")
    if max_drop is None and speedup is None:
        max_drop = DEFAULT_MAX_DROP
    for label, value in (("max_drop", max_drop), ("speedup", speedup)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{label} must be a number >= 0, got {value}")
    check_preset_name(name)
    if name in NAMED_DROPS:
        raise ValueError(f"{name!r} is a built-in preset name ({', '.join(NAMED_DROPS)}); choose another name")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not sentences:
        raise ValueError("calibration needs at least one labelled sentence")
    if criterion not in CRITERIA:
        raise ValueError(f"exit criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    if criterion != "entropy" and thresholds is DEFAULT_THRESHOLDS:
        thresholds = CRITERION_SETTINGS[criterion]
    grid = calibration_grid(model.num_layers, thresholds=thresholds, windows=windows, modes=modes, min_layer=min_layer,
                            criterion=criterion)
    stage = first_stage_of(model)
    cascades = stage is not None and (modes is DEFAULT_MODES or "cascade" in modes)
    if not grid and not cascades:
        raise ValueError("the calibration grid is empty: give at least one threshold and window (or mode 'static')")

    quantize = check_quantize(quantize)
    runner = apply_runtime(model, runtime, quantize=quantize)
    if stage is not None and runner is not model:
        attach_first_stage(runner, stage)
    policies = [ExitPolicy()] + grid
    desc = "calibrating" + (f" ({quantize})" if quantize else "")
    rows = [
        evaluate_policy(runner, sentences, policy, batch_size=batch_size)
        for policy in tqdm(policies, desc=desc, unit="policy", disable=not progress)
    ]
    full = evaluate_policy(model, sentences, ExitPolicy(), batch_size=batch_size) if quantize else rows[0]
    if cascades:
        second = pick_within_drop(rows, full.score, ACCURATE_DROP)
        thens = [None] + ([second.policy] if second is not None and second.policy.mode != "full" else [])
        candidates = [ExitPolicy.cascade(t, then=then) for then in thens for t in CASCADE_THRESHOLDS]
        with first_stage_reused(runner, [s.words for s in sentences], batch_size=batch_size):
            rows += [evaluate_policy(runner, sentences, policy, batch_size=batch_size)
                     for policy in tqdm(candidates, desc=desc + " cascades", unit="policy", disable=not progress)]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def preset(preset_name: str, pick: PolicyScore | None, *, drop: float | None = None, fast: float | None = None) -> Preset:
        if pick is None:  # nothing met the bound
            fallback = True
        elif fast is None:  # full depth is always within a drop: it won when no early exit was faster
            fallback = pick.policy.mode == "full"
        else:  # a speed-up <= 1 that full depth meets on its own
            fallback = False
        row = rows[0] if pick is None else pick  # full depth on the engine calibrated
        return Preset(
            name=preset_name, policy=row.policy, metric=row.metric, score=row.score, full_score=full.score,
            flops_speedup=row.flops_speedup, mean_exit_layer=row.mean_exit_layer, data=data, sentences=len(sentences),
            max_drop=drop, min_speedup=fast, fallback=fallback, created=created, quantize=quantize,
        )

    tail = f"-{criterion}" if (criterion != "entropy" if suffix is None else suffix) else ""
    presets = {n + tail: preset(n + tail, pick_within_drop(rows, full.score, d), drop=d) for n, d in NAMED_DROPS.items()}
    if speedup is not None:
        chosen = preset(name, pick_at_speedup(rows, speedup), fast=speedup)
    else:
        chosen = preset(name, pick_within_drop(rows, full.score, max_drop), drop=max_drop)
    presets[name] = chosen
    return CalibrationResult(full=full, rows=rows, presets=presets, chosen=chosen)


def full_depth_references(model: MultiExitTagger, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[Sentence]:
    """`sentences` (word lists) tagged by `model` at full depth: references for calibrating
    without gold labels, where a policy's drop is its disagreement with full depth (span F1 or
    accuracy against it) rather than its loss against gold. Full depth scores 100 on them."""
    run = run_policy(model, sentences, ExitPolicy(), batch_size=batch_size)
    return [Sentence(list(words), result.labels(model)) for words, result in zip(sentences, run.sentences)]

