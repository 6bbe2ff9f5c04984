"""The model bundle: the one place that knows a seqexit model folder.

A folder holds
- `seqexit.json`: the `TaggerConfig` (labels, task, scheme, backbone config);
- the weights: `model.safetensors` (all of them), or compact: `delta.safetensors` + `compact.json`
  (what fine-tuning changed against an installed backbone, see `seqexit.compact`);
- the tokenizer files (a compact folder may take them from its backbone);
- optional: `presets.json` (named exit policies, float and int8 sections), `temperatures.json`
  (per-exit softmax temperatures), `learned_exits.safetensors` and `halting_signals.safetensors`
  (the "learned" and "signals" criteria's heads),
  `training.json` (how `seqexit train` made the model).

`find_model` finds a folder by path or by a shipped model's name; `load_model`/`save_model` read
and write the model with everything it carries; `ModelBundle.open` turns a folder into a ready
runtime: the model loaded on its device, quantized if asked, and its exit policy resolved.
Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .backbones import (PICKLED_WEIGHTS, backbone_weights, check_backbone_config, check_fits, load_tokenizer,
                        read_json, resolve_backbone, stored_parameters)
from .compact import decode_deltas, encode_deltas
from .exits.learned import LearnedExitHeads
from .exits.signals import HaltingSignals, num_signals
from .exits.policy import ExitPolicy
from .exits.presets import SECTIONS, Preset, check_section, presets_payload, read_sections
from .files import umask_mode
from .model import MultiExitTagger, TaggerConfig, drop_pooler
from .quantize import check_quantize

CONFIG_FILE = "seqexit.json"
WEIGHTS_FILE = "model.safetensors"
COMPACT_FILE = "compact.json"
DELTA_FILE = "delta.safetensors"
PRESETS_FILE = "presets.json"
TEMPERATURES_FILE = "temperatures.json"
LEARNED_EXITS_FILE = "learned_exits.safetensors"
HALTING_SIGNALS_FILE = "halting_signals.safetensors"
TRAINING_FILE = "training.json"
CACHE_DIR = ".cache"  # built runtime graphs (`seqexit.runtime`), rebuilt from the weights whenever missing
FORMAT_VERSION = 1

PresetSections = dict[str | None, dict[str, Preset]]  # quantize (None: float) -> presets by name


# --- finding a folder -------------------------------------------------------------------------


def shipped_dir() -> Path | None:
    """The folder holding the shipped models (the repository's `data/models/`, installed as the
    package `seqexit_models`), editable install or not; None when it is not installed."""
    try:
        import seqexit_models
    except ImportError:
        return None
    return Path(seqexit_models.__file__).resolve().parent


def shipped_models() -> list[str]:
    """Names of the shipped models present in this installation."""
    folder = shipped_dir()
    if folder is None:
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file())


def find_model(name_or_path: str | Path) -> Path:
    """A model folder from a path, or from a shipped model's name (so `en-ner` works offline from
    any directory); a FileNotFoundError saying what exists otherwise."""
    path = Path(name_or_path)
    if path.exists():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a seqexit model folder (no {CONFIG_FILE})")
        return path
    folder = shipped_dir()
    if folder is not None and path.name == str(name_or_path) and (folder / path.name / CONFIG_FILE).is_file():
        return folder / path.name
    names = shipped_models()
    known = f"shipped models: {', '.join(names)}" if names else "no shipped models are installed"
    raise FileNotFoundError(f"no model folder or shipped model named {str(name_or_path)!r} ({known})")


# --- the model and what it carries --------------------------------------------------------------


def read_config(folder: str | Path) -> TaggerConfig:
    """The folder's `TaggerConfig` (labels, task, scheme, backbone config), without any weights;
    every field is checked (types, sizes, see `seqexit.backbones.check_backbone_config`), and a
    bad one is a ValueError naming the file and the field."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a seqexit model folder (no {CONFIG_FILE})")
    raw = read_json(path, "model config")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: malformed model config (a JSON object expected, not {type(raw).__name__})")
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{folder} was saved by a newer seqexit (format {raw['format_version']})")
    raw = _check_config_fields(raw, path)
    try:
        return TaggerConfig(**raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


MAX_LABELS = 100_000  # far more than any tag set (fine-grained NER, XPOS, morphological tags)
MAX_PIECES = 1_048_576
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "labels": (list,), "task": (str,), "scheme": (str, type(None)), "backbone": (str,), "exit_dropout": (int, float),
    "max_pieces": (int,), "casing": (bool,), "backbone_config": (dict,), "format_version": (int,),
    "exit_context": (list, type(None)), "exit_past": (list, type(None)), "exit_future": (list, type(None)),
    "exit_hidden": (list, type(None)),
}


def _check_config_fields(raw: dict, path: Path) -> dict:
    """The fields of a seqexit.json checked before anything is built (a copy, with the backbone
    config's code-fetching keys dropped)."""
    unknown = sorted(set(raw) - set(_CONFIG_TYPES))
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}")
    for key, types in _CONFIG_TYPES.items():
        if key in raw and (not isinstance(raw[key], types) or (isinstance(raw[key], bool) and bool not in types)):
            raise ValueError(f"{path}: {key} must be {' or '.join(t.__name__ for t in types)}, not {type(raw[key]).__name__}")
    labels = raw.get("labels")
    if labels is None:
        raise ValueError(f"{path}: labels is missing")
    if not 1 <= len(labels) <= MAX_LABELS:
        raise ValueError(f"{path}: labels must list 1..{MAX_LABELS:,} labels, got {len(labels):,}")
    if not all(isinstance(label, str) and 0 < len(label) <= 1000 for label in labels):
        raise ValueError(f"{path}: labels must be non-empty strings (at most 1000 characters)")
    if not 0 <= raw.get("exit_dropout", 0.1) < 1:
        raise ValueError(f"{path}: exit_dropout must be in [0, 1), got {raw['exit_dropout']!r}")
    if not 1 <= raw.get("max_pieces", 512) <= MAX_PIECES:
        raise ValueError(f"{path}: max_pieces must be in 1..{MAX_PIECES:,}, got {raw['max_pieces']!r}")
    backbone_config = check_backbone_config(raw.get("backbone_config", {}), str(path), "backbone_config.")
    return {**raw, "backbone_config": backbone_config}


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> MultiExitTagger:
    """The model of a folder (or shipped name), in eval mode on `device`, with its temperatures,
    learned exit heads and training record.

    Folders are untrusted: nothing is unpickled and no code from the folder runs; the config's
    sizes are checked against the weights files' headers before the encoder is built; damaged
    or mismatched files are a ValueError (a missing one a FileNotFoundError) naming the file."""
    folder = find_model(name_or_path)
    config = read_config(folder)
    config_file = folder / CONFIG_FILE
    compact = (folder / COMPACT_FILE).is_file()
    record = _read_compact_record(folder) if compact else None
    base = resolve_backbone(record["base"]) if record else None
    weights_file = folder / (DELTA_FILE if compact else WEIGHTS_FILE)
    if not weights_file.is_file():
        raise FileNotFoundError(f"{folder}: no {weights_file.name}{_pickle_hint(folder)}")
    stored = stored_parameters(weights_file, *([backbone_weights(base)] if base else []))  # headers only
    bc = config.backbone_config
    exits = bc["num_hidden_layers"] * (bc["hidden_size"] + 1) * len(config.labels)
    check_fits(bc, stored, str(config_file), str(weights_file), "backbone_config.")
    if exits > stored:
        raise ValueError(f"{config_file}: labels: {len(config.labels):,} labels at {bc['num_hidden_layers']} exits need "
                         f"{exits:,} parameters but {weights_file} holds only {stored:,}")
    encoder = _build_encoder(config, config_file)
    tokenizer_dir = folder
    if base is not None and not (folder / "tokenizer_config.json").is_file():
        tokenizer_dir = base
    tokenizer = load_tokenizer(tokenizer_dir, str(weights_file), encoder.config.vocab_size)
    model = MultiExitTagger(encoder, config, tokenizer)
    try:
        if record is not None:
            state = decode_deltas(_load_tensors(weights_file), record, model.state_dict(), folder)
        else:
            state = _load_tensors(weights_file, device=str(device))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, IndexError) as err:
        raise ValueError(f"{weights_file} does not match {config_file} ({_first_lines(err)})") from None
    model.exit_temperatures = read_temperatures(folder, model.num_layers)
    model.learned_exits = load_learned_exits(folder, model.adapter.hidden_size, model.num_layers)
    model.halting_signals = load_halting_signals(folder, len(config.labels), model.num_layers)
    try:
        model.training_record = read_training_record(folder)
    except (UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{folder / TRAINING_FILE}: malformed training record ({_first_lines(err)})") from None
    return model.to(device).eval()


def _build_encoder(config: TaggerConfig, config_file: Path) -> torch.nn.Module:
    """The (random) encoder the checked backbone config describes: a built-in class only, and
    for plain BERT seqexit's own modules (`encoders.light_bert`: the same weights and
    operations without importing transformers' model classes, 2.5 s of every start)."""
    from .encoders.light_bert import LightBertModel, light_bert_covers

    backbone_config = dict(config.backbone_config)
    if light_bert_covers(backbone_config):
        try:
            return LightBertModel(backbone_config)
        except (TypeError, AttributeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{config_file}: backbone_config does not describe a buildable encoder "
                             f"({_first_lines(err)})") from None
    from transformers import AutoConfig, AutoModel

    try:
        encoder = AutoModel.from_config(
            AutoConfig.for_model(backbone_config.pop("model_type"), **backbone_config), trust_remote_code=False
        )
    except (ValueError, TypeError, KeyError, AttributeError, AssertionError, RuntimeError) as err:
        raise ValueError(f"{config_file}: backbone_config does not describe a buildable encoder ({_first_lines(err)})") from None
    drop_pooler(encoder)
    return encoder


def compact_base(folder: str | Path) -> str | None:
    """The backbone a compact folder's deltas are against (its name as recorded), None for a full folder."""
    folder = Path(folder)
    return _read_compact_record(folder)["base"] if (folder / COMPACT_FILE).is_file() else None


def _read_compact_record(folder: Path) -> dict:
    path = folder / COMPACT_FILE
    record = read_json(path, "compact record")
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("base", "base_sha256")):
        raise ValueError(f"{path}: malformed compact record (base and base_sha256 must be strings)")
    return record


def _load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a ValueError naming it when it is truncated or damaged."""
    try:
        return load_file(str(path), device=device)
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file, truncated or damaged ({err})") from None


def _pickle_hint(folder: Path) -> str:
    pickled = [name for name in PICKLED_WEIGHTS if (folder / name).is_file()]
    return f" ({', '.join(pickled)} is never read: seqexit loads safetensors only)" if pickled else ""


def _first_lines(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def save_model(
    model: MultiExitTagger, folder: str | Path, *, compact_against: str | None = None, presets: PresetSections | None = None
) -> Path:
    """Write `model` as a folder: config, weights, tokenizer, and whatever the model carries
    (temperatures, learned exit heads, training record); `presets` (by section) when given
    replace the folder's presets file.

    compact_against: an installed backbone's name or folder: store only what fine-tuning changed
    against it (int8 per-row deltas, see `seqexit.compact`); the tokenizer then comes from it.

    A folder that does not exist yet is written as a hidden temporary folder beside it and
    renamed into place when complete, so a failure (a full disk, an interrupt) leaves no folder;
    into an existing folder the files are written in place, one by one."""
    if model.quantized:
        raise ValueError(f"an {model.quantized} model cannot be saved: save the float model, and quantize after loading")
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        return _save_model_files(model, folder, compact_against, presets)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o777 & ~mask)  # mkdtemp's 0700 -> what a plain mkdir gives
        _save_model_files(model, temp, compact_against, presets)
        os.rename(temp, folder)  # fails (nothing replaced) if the folder appeared meanwhile
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return folder


def _save_model_files(
    model: MultiExitTagger, folder: Path, compact_against: str | None, presets: PresetSections | None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    heads = ("learned_exits.", "halting_signals.")  # the criteria's heads: files of their own
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(heads)}
    if compact_against is None:
        _write_tensors(folder / WEIGHTS_FILE, weights)
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(folder))
    else:
        tensors, record = encode_deltas(weights, compact_against)
        _write_tensors(folder / DELTA_FILE, tensors)
        _write_json(folder / COMPACT_FILE, record, indent=2)
    _write_json(folder / CONFIG_FILE, asdict(model.config), indent=2)
    if model.exit_temperatures is not None:
        write_temperatures(folder, model.exit_temperatures)
    if model.learned_exits is not None:
        save_learned_exits(folder, model.learned_exits)
    if model.halting_signals is not None:
        save_halting_signals(folder, model.halting_signals)
    if model.training_record is not None:
        _write_json(folder / TRAINING_FILE, model.training_record, indent=1)
    if presets is not None:
        _write_presets_file(folder, presets)
    return folder


def read_training_record(folder: str | Path) -> dict | None:
    """How the model was trained (`seqexit.training.record`); None when the folder has no record."""
    file = Path(folder) / TRAINING_FILE
    return _read_json(file, "training record") if file.is_file() else None


def write_temperatures(folder: str | Path, temperatures: list[float]) -> Path:
    """Store per-exit temperatures (what `seqexit calibrate` fits for the confidence criterion)."""
    file = Path(folder) / TEMPERATURES_FILE
    _write_json(file, {"temperatures": [float(t) for t in temperatures]}, indent=2)
    return file


def read_temperatures(folder: str | Path, num_layers: int) -> list[float] | None:
    """The stored exit temperatures (None when there are none); a malformed file is a
    ValueError naming it."""
    file = Path(folder) / TEMPERATURES_FILE
    if not file.is_file():
        return None
    try:
        values = json.loads(file.read_text())["temperatures"]
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as err:
        raise ValueError(f"{file}: malformed temperatures file ({err}); rerun `seqexit calibrate`") from None
    if (not isinstance(values, list) or len(values) != num_layers
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in values)):
        raise ValueError(f"{file}: expected {num_layers} positive temperatures, one per exit, got {values!r}")
    return [float(v) for v in values]


def save_learned_exits(folder: str | Path, heads: LearnedExitHeads) -> Path:
    """Store the "learned" criterion's heads beside the model (what `seqexit learn-exits` trains)."""
    path = Path(folder) / LEARNED_EXITS_FILE
    _write_tensors(path, {k: v.detach().contiguous() for k, v in heads.state_dict().items()})
    return path


def load_learned_exits(folder: str | Path, hidden_size: int, num_layers: int) -> LearnedExitHeads | None:
    """The stored learned exit heads, or None when the folder has none."""
    path = Path(folder) / LEARNED_EXITS_FILE
    if not path.is_file():
        return None
    heads = LearnedExitHeads(hidden_size, num_layers)
    try:
        heads.load_state_dict(_load_tensors(path))
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit this model ({num_layers} layers, hidden {hidden_size}): {_first_lines(err)}") from None
    return heads.eval()


def save_halting_signals(folder: str | Path, signals: HaltingSignals) -> Path:
    """Store the "signals" criterion's heads beside the model (`seqexit learn-exits --criterion signals`)."""
    path = Path(folder) / HALTING_SIGNALS_FILE
    _write_tensors(path, {k: v.detach().contiguous() for k, v in signals.state_dict().items()})
    return path


def load_halting_signals(folder: str | Path, num_labels: int, num_layers: int) -> HaltingSignals | None:
    """The stored "signals" heads, or None when the folder has none; their width is read from the file."""
    path = Path(folder) / HALTING_SIGNALS_FILE
    if not path.is_file():
        return None
    tensors = _load_tensors(path)
    first = tensors.get("heads.0.0.weight")
    hidden = int(first.shape[0]) if first is not None and first.dim() == 2 else 0
    if not 1 <= hidden <= 4096:
        raise ValueError(f"{path} does not hold halting signal heads (no heads.0.0.weight of a sane width)")
    width = int(first.shape[1])
    if width not in (num_signals(num_labels, True), num_signals(num_labels, False)):
        raise ValueError(f"{path} does not fit this model ({num_layers} layers, {num_labels} labels): its heads read "
                         f"{width} signals, not {num_signals(num_labels, True)}")
    signals = HaltingSignals(num_labels, num_layers, hidden, streak=width == num_signals(num_labels, True))
    try:
        signals.load_state_dict(tensors)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit this model ({num_layers} layers, {num_labels} labels): {_first_lines(err)}") from None
    return signals.eval()


# --- presets ------------------------------------------------------------------------------------


def load_presets(folder: str | Path, *, quantize: str | None = None) -> dict[str, Preset]:
    """The folder's presets by name, for the float engine or (quantize="int8") the int8 one; {}
    when there are none. A malformed file is a ValueError that names it."""
    if quantize not in SECTIONS:
        raise ValueError(f"quantize must be one of {', '.join(map(str, SECTIONS))}, not {quantize!r}")
    return load_all_presets(folder)[quantize]


def load_all_presets(folder: str | Path) -> PresetSections:
    """Every section of the folder's presets ({None: float presets, "int8": int8 presets})."""
    path = Path(folder) / PRESETS_FILE
    if not path.is_file():
        return {key: {} for key in SECTIONS}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed presets file ({err}); rerun `seqexit calibrate` to rewrite it") from None
    return read_sections(raw, str(path))


def save_presets(
    folder: str | Path, presets: Mapping[str, Preset] | Iterable[Preset], *, quantize: str | None = None,
    merge: bool = False,
) -> Path:
    """Write `presets` (exactly these: the section is replaced; merge=True: added to the
    section, replacing presets of the same names) as the folder's presets for `quantize` (None:
    the float presets; "int8": the int8 ones); the other section is kept.

    Written to a temporary file in the same folder and renamed over the old one, so a reader
    never sees half a file and a crash leaves the previous presets intact. The read, update and
    write hold an exclusive lock on the folder (`flock`, where the OS has it), so two processes
    saving presets at once (two `seqexit calibrate` runs) both keep their changes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    if quantize not in SECTIONS:
        raise ValueError(f"quantize must be one of {', '.join(map(str, SECTIONS))}, not {quantize!r}")
    section = check_section(presets, quantize)
    with _folder_lock(folder):
        sections = load_all_presets(folder)
        sections[quantize] = {**sections[quantize], **section} if merge else section
        return _write_presets_file(folder, sections)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive `flock` on the folder itself (no lock file left behind), held while the body
    runs; a no-op where there is no fcntl (Windows) or the folder cannot be locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _write_presets_file(folder: Path, sections: Mapping[str | None, Mapping[str, Preset]]) -> Path:
    """Replace the folder's presets file with `sections`, atomically; no sections: no file."""
    target = folder / PRESETS_FILE
    if not any(sections.values()):
        target.unlink(missing_ok=True)
        return target
    text = json.dumps(presets_payload(sections), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
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


def resolve_preset(folder: str | Path, name: str, *, quantize: str | None = None) -> ExitPolicy:
    """The policy of preset `name` (an int8 preset for quantize="int8"); a ValueError listing the
    folder's presets (or saying how to make some) when there is no such preset."""
    presets = load_presets(folder, quantize=quantize)
    if name in presets:
        return presets[name].policy
    engine = f" {quantize}" if quantize else ""
    flag = f" --quantize {quantize}" if quantize else ""
    if not presets:
        raise ValueError(f"{folder} has no{engine} presets: run `seqexit calibrate {folder} DEV_FILE{flag}` first")
    raise ValueError(f"unknown{engine} preset {name!r} for {folder}; available: {', '.join(presets)}")


# --- opening a folder as a runtime ---------------------------------------------------------------


@dataclass
class OpenModel:
    """A model ready to tag: `runner` tags (the model, or its int8 / ONNX Runtime copy), `model`
    holds the float weights (what gets saved), `policy` is the exit policy in force and
    `runtime` the engine that runs the layers ('torch' or 'onnx')."""

    model: MultiExitTagger
    runner: MultiExitTagger
    policy: ExitPolicy
    runtime: str = "torch"


@dataclass(frozen=True)
class ModelBundle:
    """A model folder, found by path or shipped name; reads are lazy and cheap (JSON) until
    `load`/`open` builds the model."""

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))  # a str path works as well

    @classmethod
    def find(cls, name_or_path: str | Path) -> ModelBundle:
        return cls(find_model(name_or_path))

    @cached_property
    def config(self) -> TaggerConfig:
        return read_config(self.folder)

    def presets(self, quantize: str | None = None) -> dict[str, Preset]:
        return load_presets(self.folder, quantize=quantize)

    def all_presets(self) -> PresetSections:
        return load_all_presets(self.folder)

    def policy(self, preset: str | None = None, policy: ExitPolicy | None = None, quantize: str | None = None) -> ExitPolicy:
        """`policy`, or the stored preset of that name (an int8 one for quantize="int8"), or full depth."""
        if preset is None:
            return policy or ExitPolicy()
        if policy is not None:
            raise ValueError("give either a policy or a preset, not both")
        return resolve_preset(self.folder, preset, quantize=quantize)

    def load(self, device: str | torch.device = "cpu") -> MultiExitTagger:
        return load_model(self.folder, device)

    def open(
        self, *, preset: str | None = None, policy: ExitPolicy | None = None, quantize: str | None = None,
        device: str | torch.device = "cpu", keep_float: bool = False, runtime: str | None = "auto",
    ) -> OpenModel:
        """Load, pick the runtime, quantize and resolve the policy: everything that stands
        between a folder and tagging. runtime: 'auto' (measured on this CPU, see
        `seqexit.runtime.pick_runtime`), 'torch' or 'onnx'. keep_float: keep the float model
        beside the runner (to save it later); otherwise the model is converted in place to
        spare the memory."""
        from .runtime import apply_runtime, check_runtime

        quantize = check_engine(quantize, device)
        runtime = check_runtime(runtime)
        chosen = self.policy(preset, policy, quantize)  # before loading: a bad preset fails fast
        model = self.load(device)
        runner = apply_runtime(model, runtime, quantize=quantize, inplace=not keep_float, cache_dir=self.graph_cache())
        self.attach_first_stage(runner, quantize=quantize, device=device, runtime=runtime)
        return OpenModel(model if keep_float else runner, runner, chosen, runner.runtime)

    def attach_first_stage(self, runner: MultiExitTagger, *, quantize: str | None, device: str | torch.device,
                           runtime: str | None) -> None:
        """The cascade's first stage the folder names (`seqexit.cascade`), attached to `runner`
        to load on first use with the same engine settings; nothing when there is none."""
        from .cascade import FirstStage, attach_first_stage, read_first_stage

        first = read_first_stage(self.folder)
        if first is not None:
            attach_first_stage(runner, FirstStage(first, quantize=quantize, device=device, runtime=runtime))

    def graph_cache(self) -> Path:
        """Where built runtime graphs are kept: `.cache/` in the folder when it is writable (a
        model and its graphs travel together), else the user cache, one folder per model."""
        inside = self.folder / CACHE_DIR
        if os.access(inside if inside.is_dir() else self.folder, os.W_OK):
            return inside
        from .runtime.cache import user_cache_dir

        return user_cache_dir() / "graphs" / hashlib.blake2b(str(self.folder.resolve()).encode(), digest_size=8).hexdigest()


def check_engine(quantize: str | None, device: str | torch.device) -> str | None:
    """The quantize setting checked against the choices and the device ('int8' or None)."""
    quantize = check_quantize(quantize)
    if quantize and torch.device(device).type != "cpu":
        raise ValueError(f"quantize={quantize!r} runs on the CPU only (int8 dynamic kernels), not on {device}")
    return quantize


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed {what} ({err})") from None


def _write_json(path: Path, data: Any, *, indent: int) -> None:
    path.write_text(json.dumps(data, indent=indent) + "\n")


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(path), metadata={"format": "pt"})
    umask_mode(path)  # safetensors writes 0600; readable like the folder's other files


def resolve_device(device: str) -> str:
    """The device to open a model on: `auto` -> cuda when available, else cpu; anything else must
    be a device torch knows and this machine has (a ValueError otherwise)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, auto)") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU is available here")
    return device
