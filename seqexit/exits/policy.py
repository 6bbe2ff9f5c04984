"""`ExitPolicy`: where computation stops. One object that the engine, the CLI and the spaCy
component all pass around, with one set of defaults and validated once, here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .criteria import COUNTING, CRITERIA, doubt_bound

MODES = ("full", "static", "sentee", "tokee", "cascade")
FIELDS = ("mode", "threshold", "window", "static_layer", "min_layer", "criterion", "patience", "then")

# What `threshold` means per criterion (see `criteria.py`): its upper bound (None: none) and a
# description for error messages. patience and rising count exits instead and take no threshold.
THRESHOLDS: dict[str, tuple[float | None, str]] = {
    "entropy": (None, "a normalised entropy in [0, 1] (a word halts below it: 0 never halts, above 1 every word "
                      "halts), so it must be >= 0"),
    "confidence": (1.0, "a probability in [0, 1] (a word halts when its top probability, after temperature, is above it)"),
    "vote": (1.0, "a share of the total vote weight of all exits, in [0, 1] (a word halts when its label's lead is above it)"),
    "learned": (1.0, "a probability in [0, 1] (a word halts when the learned head's probability that its label is final "
                     "is above it)"),
    "signals": (1.0, "a probability in [0, 1] (a word halts when the signals' probability that its label is final "
                     "is above it)"),
}


class PolicyError(ValueError):
    """A refused exit-policy setting. The message names settings by their `ExitPolicy` field
    (`str(err)`); `worded(names)` names them otherwise, e.g. by the CLI's options."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.worded())

    def worded(self, names: Mapping[str, str] | None = None) -> str:
        """The message with every `{field}` written as names[field] (the field name itself by default)."""
        names = names or {}
        return re.sub(r"\{(" + "|".join(FIELDS) + r")\}", lambda m: names.get(m[1], m[1]), self.template)

    def __reduce__(self):
        return type(self), (self.template,)


@dataclass(frozen=True)
class ExitPolicy:
    """How the engine decides the exit layer of every word.

    mode: "full" (every layer), "static" (every word exits at `static_layer`), "sentee" (a
        sentence leaves the batch at the first layer where all its words are certain) or
        "tokee" (each word halts on its own; halted words stay keys/values for the rest) or
        "cascade" (a smaller first-stage model tags every sentence, and only the sentences
        where it is unsure run on this model: see `seqexit.cascade`).
    threshold: one value, or one per layer; what it means depends on the criterion:
        entropy: a word is certain when its (window) normalised entropy is *below* it; entropy
        is in [0, 1], so 0 never halts and anything above 1 always halts (any value >= 0).
        confidence, vote, learned, signals: a word is certain when its top probability / vote
        lead / learned probability is *above* it, a value in [0, 1] (1 never halts).
        patience, rising: not used (must stay 0).
        cascade: a sentence goes on to this model when the first stage's normalised
        entropy of any of its words is at or above it (any value >= 0; 0 sends every sentence).
    window: half-width k of the uncertainty window (words i-k..i+k of the same sentence);
        cascade: unused (kept at 0), since a sentence's largest doubt is the same for any window.
    static_layer: the exit layer of mode "static" (1-based).
    min_layer: no word halts before this layer (1-based); the last layer always ends.
    criterion: what makes a word certain (see `seqexit.exits.criteria`): "entropy" (the
        default: normalised entropy below threshold), "confidence" (top probability above
        threshold), "patience" / "rising" (the label unchanged / its probability rising at
        `patience` consecutive exits; threshold unused), "vote" (the depth-weighted vote lead
        of the exits so far above threshold), "learned" (a trained head's probability that the
        exit already agrees with the last one, above threshold) or "signals" (the same
        probability from several signals: `seqexit.exits.signals`).
    patience: N for "patience" and "rising" (>= 1); None for the others.
    then: cascade only: the policy of this model on the sentences sent on (None: full depth);
        any mode but cascade.

    Errors are `PolicyError`s (ValueErrors) whose messages name the settings.
    """

    mode: str = "full"
    threshold: float | tuple[float, ...] = 0.0
    window: int = 2
    static_layer: int | None = None
    min_layer: int = 1
    criterion: str = "entropy"
    patience: int | None = None
    then: ExitPolicy | None = None

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise PolicyError(f"{{criterion}} must be one of {', '.join(CRITERIA)}, not {self.criterion!r}")
        if self.criterion in COUNTING:
            if self.patience is None or self.patience < 1:
                raise PolicyError(f"{{criterion}} {self.criterion} needs {{patience}} >= 1 (exits in a row), got {self.patience}")
        elif self.patience is not None:
            raise PolicyError(f"{{patience}} is for the criteria {' and '.join(COUNTING)}, not {{criterion}} {self.criterion}")
        if self.mode not in MODES:
            raise PolicyError(f"{{mode}} must be one of {', '.join(MODES)}, not {self.mode!r}")
        object.__setattr__(self, "threshold", _threshold_value(self.threshold))
        self._check_threshold()
        self._check_cascade()
        if self.window < 0:
            raise PolicyError(f"{{window}} must be >= 0, got {self.window}")
        if self.min_layer < 1:
            raise PolicyError(f"{{min_layer}} must be >= 1, got {self.min_layer}")
        if self.mode == "static" and self.static_layer is None:
            raise PolicyError("{mode} static needs {static_layer} (the exit layer, >= 1)")
        if self.static_layer is not None and self.static_layer < 1:
            raise PolicyError(f"{{static_layer}} must be >= 1, got {self.static_layer}")

    def _check_cascade(self) -> None:
        """A cascade routes on the first stage's entropy, and only a cascade has a `then`."""
        if self.then is not None and self.mode != "cascade":
            raise PolicyError(f"{{then}} is the second stage of a cascade: it cannot go with {{mode}} {self.mode}")
        if self.mode != "cascade":
            return
        if isinstance(self.threshold, tuple):
            raise PolicyError("{mode} cascade takes one {threshold} (on the first stage's entropy), not one per layer")
        if self.criterion != "entropy":
            raise PolicyError(f"{{mode}} cascade routes on the first stage's entropy: leave {{criterion}} at entropy, "
                              f"not {self.criterion}")
        if self.then is not None and not isinstance(self.then, ExitPolicy):
            raise PolicyError(f"{{then}} must be an exit policy, not {type(self.then).__name__}")
        if self.then is not None and self.then.mode == "cascade":
            raise PolicyError("{then} of a cascade cannot be a cascade itself")
        object.__setattr__(self, "window", 0)  # a sentence's max is the same for every window: unused

    def _check_threshold(self) -> None:
        """The threshold's range for the criterion in use (`THRESHOLDS`); unused by patience and rising."""
        values = self.threshold if isinstance(self.threshold, tuple) else (self.threshold,)
        shown = ",".join(f"{v:g}" for v in values)
        if self.criterion in COUNTING:
            if any(v != 0 for v in values):
                raise PolicyError(f"{{threshold}} is not used by {{criterion}} {self.criterion}, which counts exits in a row "
                                  f"({{patience}}): leave it at 0, not {shown}")
            return
        upper, meaning = THRESHOLDS[self.criterion]
        if any(not v >= 0 or (upper is not None and v > upper) for v in values):  # `not >=`: NaN too
            raise PolicyError(f"{{threshold}} {shown} is out of range for {{criterion}} {self.criterion}: it is {meaning}")

    def thresholds(self, num_layers: int) -> list[float]:
        """One threshold per layer, with 0 (never halt) below min_layer."""
        if isinstance(self.threshold, tuple):
            if len(self.threshold) != num_layers:
                raise PolicyError(f"{len(self.threshold)} thresholds given for a {num_layers}-layer model: "
                                  "give one {threshold}, or one per layer")
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
                raise PolicyError(f"{{static_layer}} {self.static_layer} is deeper than the model's {num_layers} layers")
            return self.static_layer
        return num_layers

    def __str__(self) -> str:
        if self.mode == "cascade":
            then = "" if self.then is None or self.then.mode == "full" else f", then {self.then}"
            return f"cascade threshold {self.threshold:g}{then}"
        if self.mode in ("full", "static"):
            return "full depth" if self.mode == "full" else f"static exit at layer {self.static_layer}"
        threshold = self.threshold if isinstance(self.threshold, float) else ",".join(map(str, self.threshold))
        floor = f", min layer {self.min_layer}" if self.min_layer > 1 else ""
        if self.criterion in COUNTING:
            return f"{self.mode} {self.criterion} {self.patience} window {self.window}{floor}"
        criterion = "" if self.criterion == "entropy" else f" {self.criterion}"
        return f"{self.mode}{criterion} threshold {threshold} window {self.window}{floor}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (per-layer thresholds as a list) that `from_dict` reads back. It always
        holds mode, threshold, window, static_layer and min_layer, so a stored policy keeps its
        meaning when a default changes (window's default was 0 before it became 2)."""
        threshold = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        data = {"mode": self.mode, "threshold": threshold, "window": self.window,
                "static_layer": self.static_layer, "min_layer": self.min_layer}
        if self.criterion != "entropy":  # entropy policies read the same as before criteria existed
            data |= {"criterion": self.criterion, "patience": self.patience}
        if self.then is not None:
            data["then"] = self.then.to_dict()
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
        then = data.get("then")
        if then is not None:
            if not isinstance(then, Mapping):
                raise ValueError(f"exit policy then must be a JSON object (the cascade's second stage), not {then!r}")
            data = {**data, "then": cls.from_dict(then)}
        threshold = data.get("threshold", 0.0)
        values = threshold if isinstance(threshold, (list, tuple)) else [threshold]
        if not values or not all(_is_number(v) for v in values):
            raise ValueError(f"exit policy threshold must be a number or a non-empty list of numbers, not {threshold!r}")
        return cls(**{**data, "threshold": tuple(threshold) if isinstance(threshold, (list, tuple)) else threshold})

    @classmethod
    def from_options(
        cls, mode: str = "full", threshold: str | float | Sequence[float] = 0.0, window: int = 2, min_layer: int = 1,
        exit_layer: int | None = None, criterion: str = "entropy", patience: int | None = None,
        then: ExitPolicy | None = None,
    ) -> ExitPolicy:
        """The policy of option values, as the CLI takes them: threshold may also be a string,
        one number or comma-separated numbers (one per layer: "0.1,0.2,0.2,0.3"); exit_layer
        is a static exit at that layer (mode "static"; with mode left at "full" or "static").
        Every check of the class applies; errors are `PolicyError`s naming the settings as
        here (exit_layer as `{static_layer}`: `worded` renames it)."""
        values = _parse_threshold(threshold)
        if exit_layer is not None:
            if mode not in ("full", "static"):
                raise PolicyError(f"{{static_layer}} {exit_layer} is a static exit: it cannot go with {{mode}} {mode}")
            mode = "static"
        policy = cls(mode=mode, threshold=values, window=window, min_layer=min_layer, static_layer=exit_layer,
                     criterion=criterion, patience=patience, then=then)
        return cls.static(exit_layer) if mode == "static" else policy

    @classmethod
    def static(cls, layer: int) -> ExitPolicy:
        return cls(mode="static", static_layer=layer)

    @classmethod
    def tokee(cls, threshold: float | Sequence[float] = 0.0, window: int = 2, min_layer: int = 1, *,
              criterion: str = "entropy", patience: int | None = None) -> ExitPolicy:
        return cls(mode="tokee", threshold=threshold, window=window, min_layer=min_layer, criterion=criterion,
                   patience=patience)

    @classmethod
    def cascade(cls, threshold: float, window: int = 0, then: ExitPolicy | None = None) -> ExitPolicy:
        return cls(mode="cascade", threshold=threshold, window=window, then=then)

    @classmethod
    def sentee(cls, threshold: float | Sequence[float] = 0.0, window: int = 2, min_layer: int = 1, *,
               criterion: str = "entropy", patience: int | None = None) -> ExitPolicy:
        return cls(mode="sentee", threshold=threshold, window=window, min_layer=min_layer, criterion=criterion,
                   patience=patience)


def _threshold_value(threshold: Any) -> float | tuple[float, ...]:
    """A float, or a non-empty tuple of floats (one per layer)."""
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        values = [_as_float(v) for v in threshold]
        if not values or None in values:
            raise PolicyError(f"{{threshold}} must be a number or a non-empty sequence of numbers, not {threshold!r}")
        return tuple(values)
    value = _as_float(threshold)
    if value is None:
        raise PolicyError(f"{{threshold}} must be a number or a non-empty sequence of numbers, not {threshold!r}")
    return value


def _as_float(value: Any) -> float | None:
    """float(value) for a number (numpy's too); None for anything else, strings and bools included."""
    if isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse_threshold(threshold: str | float | Sequence[float]) -> float | tuple[float, ...]:
    """A threshold option: a number, a sequence of numbers or a string of comma-separated numbers."""
    if not isinstance(threshold, str):
        return _threshold_value(threshold)
    try:
        values = [float(v) for v in threshold.split(",")]
    except ValueError:
        raise PolicyError(f"{{threshold}} must be a number or comma-separated numbers (one per layer), not {threshold!r}") from None
    return values[0] if len(values) == 1 else tuple(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(data: Mapping[str, Any], key: str, kind: type, optional: bool = False) -> None:
    """A ValueError naming `key` when its value is not a `kind` (bools are not ints here)."""
    if key not in data or (optional and data[key] is None):
        return
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"exit policy {key} must be {kind.__name__}, not {value!r}")
