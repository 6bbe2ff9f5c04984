"""Named exit policies stored next to a model (`presets.json`), with the accuracy/cost trade-off
each one was measured at, so that users pick "balanced" instead of a threshold and a window.

`seqexit calibrate` writes the file; anything that takes a policy can `resolve_preset` a name.
Presets calibrated for the int8 engine (`seqexit.quantize`) live beside the float ones, in the
file's "int8" section: thresholds that suit the float exits need not suit the int8 ones, so
`--preset fast --quantize int8` names a policy measured on the int8 engine.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import umask_mode
from .policy import ExitPolicy

PRESETS_FILE = "presets.json"
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


def presets_path(model_dir: str | Path) -> Path:
    """Where a model folder keeps its presets."""
    return Path(model_dir) / PRESETS_FILE


def save_presets(
    model_dir: str | Path, presets: Mapping[str, Preset] | Iterable[Preset], *, quantize: str | None = None
) -> Path:
    """Write `presets` (exactly these: the section is replaced) as MODEL_DIR/presets.json's
    section for `quantize` (None: the float presets; "int8": the int8 ones); the other section
    is kept as it was.

    Written to a temporary file in the same folder and renamed over the old one, so a reader
    never sees half a file and a crash leaves the previous presets intact.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
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
    sections = {key: load_presets(folder, quantize=key) for key in SECTIONS if key != quantize}
    sections[quantize] = by_name
    payload: dict[str, Any] = {"format_version": PRESETS_VERSION}
    for key, section in SECTIONS.items():
        if key is None or sections[key]:
            payload[section] = {name: p.to_dict() for name, p in sections[key].items()}
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    target = presets_path(folder)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{PRESETS_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        umask_mode(temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def load_presets(model_dir: str | Path, *, quantize: str | None = None) -> dict[str, Preset]:
    """The presets of a model folder by name, for the float engine or (quantize="int8") the
    int8 one; {} when there are none. A malformed file is a ValueError that names it."""
    path = presets_path(model_dir)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed presets file ({err}); rerun `seqexit calibrate` to rewrite it") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("presets"), dict):
        raise ValueError(f"{path}: malformed presets file (expected an object with a 'presets' object)")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path}: malformed presets file (no integer 'format_version')")
    if version > PRESETS_VERSION:
        raise ValueError(f"{path} was written by a newer seqexit (presets format {version})")
    if quantize not in SECTIONS:
        raise ValueError(f"quantize must be one of {', '.join(map(str, SECTIONS))}, not {quantize!r}")
    section = raw.get(SECTIONS[quantize], {})
    if not isinstance(section, dict):
        raise ValueError(f"{path}: malformed presets file ('{SECTIONS[quantize]}' is not an object)")
    presets = {}
    for name, entry in section.items():
        try:
            preset = Preset.from_dict(entry)
        except ValueError as err:
            raise ValueError(f"{path}: malformed preset {name!r}: {err}") from None
        if preset.name != name:
            raise ValueError(f"{path}: preset stored under {name!r} is named {preset.name!r}")
        if preset.quantize != quantize:
            raise ValueError(f"{path}: preset {name!r} in section '{SECTIONS[quantize]}' is for quantize={preset.quantize}")
        presets[name] = preset
    return presets


def resolve_preset(model_dir: str | Path, name: str, *, quantize: str | None = None) -> ExitPolicy:
    """The policy of preset `name` of a model folder (its int8 presets for quantize="int8"); a
    ValueError listing the presets there (or saying how to make some) when there is no such preset."""
    presets = load_presets(model_dir, quantize=quantize)
    if name in presets:
        return presets[name].policy
    engine = f" {quantize}" if quantize else ""
    flag = f" --quantize {quantize}" if quantize else ""
    if not presets:
        raise ValueError(f"{model_dir} has no{engine} presets: run `seqexit calibrate {model_dir} DEV_FILE{flag}` first")
    raise ValueError(f"unknown{engine} preset {name!r} for {model_dir}; available: {', '.join(presets)}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(name: str, key: str, value: Any) -> float:
    """A preset's float field: null stands for a value that was not finite (NaN)."""
    if value is None:
        return math.nan
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"preset {name!r}: {key} must be a number, not {value!r}")
    return float(value)
