"""`ExitPolicy`: where computation stops. One object that the engine, the CLI and the spaCy
component all pass around, validated once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .criteria import COUNTING, CRITERIA, doubt_bound

MODES = ("full", "static", "sentee", "tokee")


@dataclass(frozen=True)
class ExitPolicy:
    """How the engine decides the exit layer of every word.

    mode: "full" (every layer), "static" (every word exits at `static_layer`), "sentee" (a
        sentence leaves the batch at the first layer where all its words are certain) or
        "tokee" (each word halts on its own; halted words stay keys/values for the rest).
    threshold: a word is certain at layer l when its window uncertainty is *below*
        threshold (one value, or one per layer). Uncertainty is normalised entropy in [0, 1],
        so 0 never halts and anything above 1 always halts.
    window: half-width k of the uncertainty window (words i-k..i+k of the same sentence).
    static_layer: the exit layer of mode "static" (1-based).
    min_layer: no word halts before this layer (1-based); the last layer always ends.
    criterion: what makes a word certain (see `seqexit.exits.criteria`): "entropy" (the
        default: normalised entropy below threshold), "confidence" (top probability above
        threshold), "patience" / "rising" (the label unchanged / its probability rising at
        `patience` consecutive exits; threshold unused), "vote" (the depth-weighted vote lead
        of the exits so far above threshold) or "learned" (a trained head's probability that the
        exit already agrees with the last one, above threshold).
    patience: N for "patience" and "rising" (>= 1); None for the others.
    """

    mode: str = "full"
    threshold: float | tuple[float, ...] = 0.0
    window: int = 0
    static_layer: int | None = None
    min_layer: int = 1
    criterion: str = "entropy"
    patience: int | None = None

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"exit criterion must be one of {', '.join(CRITERIA)}, not {self.criterion!r}")
        if self.criterion in COUNTING:
            if self.patience is None or self.patience < 1:
                raise ValueError(f"criterion {self.criterion!r} needs patience >= 1 (exits in a row), got {self.patience}")
        elif self.patience is not None:
            raise ValueError(f"patience is for the criteria {' and '.join(COUNTING)}, not {self.criterion!r}")
        if self.mode not in MODES:
            raise ValueError(f"exit mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if isinstance(self.threshold, Sequence) and not isinstance(self.threshold, str):
            object.__setattr__(self, "threshold", tuple(float(t) for t in self.threshold))
            values = self.threshold
        else:
            object.__setattr__(self, "threshold", float(self.threshold))
            values = (self.threshold,)
        if any(t < 0 for t in values):
            raise ValueError(f"thresholds must be >= 0, got {self.threshold}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.min_layer < 1:
            raise ValueError(f"min_layer must be >= 1, got {self.min_layer}")
        if self.mode == "static" and (self.static_layer is None or self.static_layer < 1):
            raise ValueError("mode 'static' needs static_layer >= 1")

    def thresholds(self, num_layers: int) -> list[float]:
        """One threshold per layer, with 0 (never halt) below min_layer."""
        if isinstance(self.threshold, tuple):
            if len(self.threshold) != num_layers:
                raise ValueError(f"{len(self.threshold)} thresholds given for a {num_layers}-layer model")
            values = list(self.threshold)
        else:
            values = [self.threshold] * num_layers
        return [0.0 if layer + 1 < self.min_layer else t for layer, t in enumerate(values)]

    def doubt_bounds(self, num_layers: int) -> list[float]:
        """Per layer, the doubt below which a word qualifies under this policy's criterion
        (`criteria.doubt_bound`); 0 (nothing qualifies) below min_layer."""
        return [doubt_bound(self.criterion, t) if layer + 1 >= self.min_layer else 0.0
                for layer, t in enumerate(self.thresholds(num_layers))]

    def exit_depth(self, num_layers: int) -> int:
        """The deepest layer this policy may run."""
        if self.mode == "static":
            if self.static_layer > num_layers:
                raise ValueError(f"static_layer {self.static_layer} is deeper than the model's {num_layers} layers")
            return self.static_layer
        return num_layers

    def __str__(self) -> str:
        if self.mode in ("full", "static"):
            return "full depth" if self.mode == "full" else f"static exit at layer {self.static_layer}"
        threshold = self.threshold if isinstance(self.threshold, float) else ",".join(map(str, self.threshold))
        floor = f", min layer {self.min_layer}" if self.min_layer > 1 else ""
        if self.criterion in COUNTING:
            return f"{self.mode} {self.criterion} {self.patience} window {self.window}{floor}"
        criterion = "" if self.criterion == "entropy" else f" {self.criterion}"
        return f"{self.mode}{criterion} threshold {threshold} window {self.window}{floor}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (per-layer thresholds as a list) that `from_dict` reads back."""
        threshold = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        data = {"mode": self.mode, "threshold": threshold, "window": self.window,
                "static_layer": self.static_layer, "min_layer": self.min_layer}
        if self.criterion != "entropy":  # entropy policies read the same as before criteria existed
            data |= {"criterion": self.criterion, "patience": self.patience}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExitPolicy:
        """The policy `to_dict` wrote (missing keys take their defaults), validated like any
        other; unknown keys and values of the wrong type are a ValueError, not a silent guess."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an exit policy must be a JSON object, not {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown exit policy key(s) {', '.join(map(repr, unknown))}; expected {', '.join(known)}")
        _check_type(data, "mode", str)
        _check_type(data, "window", int)
        _check_type(data, "min_layer", int)
        _check_type(data, "static_layer", int, optional=True)
        _check_type(data, "criterion", str)
        _check_type(data, "patience", int, optional=True)
        threshold = data.get("threshold", 0.0)
        values = threshold if isinstance(threshold, (list, tuple)) else [threshold]
        if not values or not all(_is_number(v) for v in values):
            raise ValueError(f"exit policy threshold must be a number or a non-empty list of numbers, not {threshold!r}")
        return cls(**{**data, "threshold": tuple(threshold) if isinstance(threshold, (list, tuple)) else threshold})

    @classmethod
    def static(cls, layer: int) -> ExitPolicy:
        return cls(mode="static", static_layer=layer)

    @classmethod
    def tokee(cls, threshold: float | Sequence[float] = 0.0, window: int = 2, min_layer: int = 1, *,
              criterion: str = "entropy", patience: int | None = None) -> ExitPolicy:
        return cls(mode="tokee", threshold=threshold, window=window, min_layer=min_layer, criterion=criterion,
                   patience=patience)

    @classmethod
    def sentee(cls, threshold: float | Sequence[float] = 0.0, window: int = 0, min_layer: int = 1, *,
               criterion: str = "entropy", patience: int | None = None) -> ExitPolicy:
        return cls(mode="sentee", threshold=threshold, window=window, min_layer=min_layer, criterion=criterion,
                   patience=patience)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(data: Mapping[str, Any], key: str, kind: type, optional: bool = False) -> None:
    """A ValueError naming `key` when its value is not a `kind` (bools are not ints here)."""
    if key not in data or (optional and data[key] is None):
        return
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"exit policy {key} must be {kind.__name__}, not {value!r}")
