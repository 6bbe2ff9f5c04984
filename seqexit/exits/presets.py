"""Named exit policies stored next to a model (the folder's presets file), with the accuracy/cost trade-off
each one was measured at, so that users pick "balanced" instead of a threshold and a window.

`seqexit calibrate` measures them; the model bundle (`seqexit.bundle`) reads and writes the file,
and anything that takes a policy can resolve a name there (`ModelBundle.policy`).
Presets calibrated for the int8 engine (`seqexit.quantize`) live beside the float ones, in the
file's "int8" section: thresholds that suit the float exits need not suit the int8 ones, so
`--preset fast --quantize int8` names a policy measured on the int8 engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .policy import ExitPolicy

PRESETS_VERSION = 1
SECTIONS = {None: "presets", "int8": "int8"}  # quantize setting -> the file's section
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_preset_name(name: str) -> str:
    """`name` when it is a usable preset name (letters, digits, `_.-`, at most 64), else ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"preset name must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), not {name!r}")
    return name


@dataclass
class Preset:
    """A named policy and what it scored on the calibration data.

    metric: "f1" (span F1, NER/chunking) or "accuracy" (POS), in percent.
    score / full_score: the policy's score and the full-depth score on the same data.
    flops_speedup: full-depth FLOPs / FLOPs spent; mean_exit_layer: 1-based, over words.
    data: the calibration file as it was given; sentences: how many it held.
    max_drop / min_speedup: the bound the policy was picked under (one of them is set).
    fallback: no early-exit policy met the bound, so this is full depth.
    created: when it was measured (ISO 8601, UTC).
    quantize: None for the float engine, "int8" for the int8 one; an int8 preset's full_score
        is the float model's full depth, so its drop includes what int8 costs.
    """

    name: str
    policy: ExitPolicy
    metric: str
    score: float
    full_score: float
    flops_speedup: float
    mean_exit_layer: float
    data: str | None = None
    sentences: int | None = None
    max_drop: float | None = None
    min_speedup: float | None = None
    fallback: bool = False
    created: str | None = None
    quantize: str | None = None

    def __post_init__(self) -> None:
        check_preset_name(self.name)
        if self.quantize not in SECTIONS:
            raise ValueError(f"preset {self.name!r}: quantize must be one of {', '.join(map(str, SECTIONS))}, not {self.quantize!r}")
        if not isinstance(self.policy, ExitPolicy):
            raise ValueError(f"preset {self.name!r}: policy must be an ExitPolicy, not {type(self.policy).__name__}")

    @property
    def drop(self) -> float:
        """Points lost against full depth (negative when the policy scored higher)."""
        return self.full_score - self.score

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite numbers become null); `drop` is included for readers
        and ignored by `from_dict`."""
        return {
            "name": self.name, "policy": self.policy.to_dict(), "metric": self.metric,
            "score": _finite(self.score), "full_score": _finite(self.full_score), "drop": _finite(self.drop),
            "flops_speedup": _finite(self.flops_speedup), "mean_exit_layer": _finite(self.mean_exit_layer),
            "data": self.data, "sentences": self.sentences, "max_drop": self.max_drop,
            "min_speedup": self.min_speedup, "fallback": self.fallback, "created": self.created,
            **({"quantize": self.quantize} if self.quantize else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        """The preset `to_dict` wrote; a ValueError on a missing or unknown key or a bad value."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a preset must be a JSON object, not {type(data).__name__}")
        required = ("name", "policy", "metric", "score", "full_score", "flops_speedup", "mean_exit_layer")
        optional = ("data", "sentences", "max_drop", "min_speedup", "fallback", "created", "quantize")
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"preset is missing {', '.join(missing)}")
        unknown = sorted(set(data) - set(required) - set(optional) - {"drop"})
        if unknown:
            raise ValueError(f"preset {data['name']!r} has unknown key(s) {', '.join(map(repr, unknown))}")
        name = data["name"]
        try:
            policy = ExitPolicy.from_dict(data["policy"])
        except ValueError as err:
            raise ValueError(f"preset {name!r}: {err}") from None
        numbers = {key: _number(name, key, data[key]) for key in ("score", "full_score", "flops_speedup", "mean_exit_layer")}
        for key in ("max_drop", "min_speedup"):
            if data.get(key) is not None:
                numbers[key] = _number(name, key, data[key])
        if not isinstance(data["metric"], str):
            raise ValueError(f"preset {name!r}: metric must be a string, not {data['metric']!r}")
        if data.get("sentences") is not None and (not isinstance(data["sentences"], int) or isinstance(data["sentences"], bool)):
            raise ValueError(f"preset {name!r}: sentences must be an integer, not {data['sentences']!r}")
        if not isinstance(data.get("fallback", False), bool):
            raise ValueError(f"preset {name!r}: fallback must be true or false, not {data['fallback']!r}")
        extras = {key: data[key] for key in ("data", "sentences", "fallback", "created", "quantize") if key in data}
        return cls(name=name, policy=policy, metric=data["metric"], **numbers, **extras)


def check_section(presets: Mapping[str, Preset] | Iterable[Preset], quantize: str | None) -> dict[str, Preset]:
    """`presets` by name as one section (quantize None: float; "int8"); a ValueError on two
    presets of one name or a preset of the other engine."""
    if quantize not in SECTIONS:
        raise ValueError(f"quantize must be one of {', '.join(map(str, SECTIONS))}, not {quantize!r}")
    items = list(presets.values()) if isinstance(presets, Mapping) else list(presets)
    by_name: dict[str, Preset] = {}
    for preset in items:
        if preset.name in by_name:
            raise ValueError(f"two presets are named {preset.name!r}")
        if preset.quantize != quantize:
            raise ValueError(f"preset {preset.name!r} is for quantize={preset.quantize}, not {quantize}")
        by_name[preset.name] = preset
    return by_name


def presets_payload(sections: Mapping[str | None, Mapping[str, Preset] | Iterable[Preset]]) -> dict[str, Any]:
    """The JSON object of a presets file: the format version and each non-empty section (the
    float one always)."""
    payload: dict[str, Any] = {"format_version": PRESETS_VERSION}
    for key, section in SECTIONS.items():
        checked = check_section(sections.get(key, {}), key)
        if key is None or checked:
            payload[section] = {name: p.to_dict() for name, p in checked.items()}
    return payload


def read_sections(raw: Any, where: str) -> dict[str | None, dict[str, Preset]]:
    """Every section of a presets file's JSON object; a ValueError naming `where` when malformed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("presets"), dict):
        raise ValueError(f"{where}: malformed presets file (expected an object with a 'presets' object)")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where}: malformed presets file (no integer 'format_version')")
    if version > PRESETS_VERSION:
        raise ValueError(f"{where} was written by a newer seqexit (presets format {version})")
    sections: dict[str | None, dict[str, Preset]] = {}
    for quantize, key in SECTIONS.items():
        section = raw.get(key, {})
        if not isinstance(section, dict):
            raise ValueError(f"{where}: malformed presets file ('{key}' is not an object)")
        presets = {}
        for name, entry in section.items():
            try:
                preset = Preset.from_dict(entry)
            except ValueError as err:
                raise ValueError(f"{where}: malformed preset {name!r}: {err}") from None
            if preset.name != name:
                raise ValueError(f"{where}: preset stored under {name!r} is named {preset.name!r}")
            if preset.quantize != quantize:
                raise ValueError(f"{where}: preset {name!r} in section '{key}' is for quantize={preset.quantize}")
            presets[name] = preset
        sections[quantize] = presets
    return sections


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(name: str, key: str, value: Any) -> float:
    """A preset's float field: null stands for a value that was not finite (NaN)."""
    if value is None:
        return math.nan
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"preset {name!r}: {key} must be a number, not {value!r}")
    return float(value)
