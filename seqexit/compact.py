"""Compact model folders: only what fine-tuning changed, against a backbone the user has installed.

A fine-tuned MiniLM tagger is 90 MB of float32, most of it the backbone's own weights (the
word-piece embeddings are never trained at all). A compact folder stores, per tensor, the change
from the backbone: matrices as int8 deltas with one float scale per row, vectors (biases,
LayerNorms) and the exits whole; unchanged tensors not at all. `compact.json` names the backbone
and the SHA-256 of its weights, so a delta is never applied to the wrong base. Loading rebuilds
the full state dict; `MultiExitTagger.load` does it when it finds `compact.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load, load_file, save_file

from .backbones import resolve_backbone
from .files import umask_mode

COMPACT_FILE = "compact.json"
DELTA_FILE = "delta.safetensors"
ENCODER_PREFIX = "encoder."


def base_weights_file(base: str) -> Path:
    folder = resolve_backbone(base)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no model.safetensors in the backbone folder")


def base_state(base: str, model_state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """(SHA-256 of the backbone's weights file, its weights under the tagger's names:
    `encoder.` + the Hugging Face name), from one read of the file."""
    raw = base_weights_file(base).read_bytes()
    names = {k.removeprefix("bert."): v for k, v in load(raw).items()}
    state = {key: names[key[len(ENCODER_PREFIX):]] for key in model_state
             if key.startswith(ENCODER_PREFIX) and key[len(ENCODER_PREFIX):] in names}
    return hashlib.sha256(raw).hexdigest(), state


def quantize_rows(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 values, float32 scale per row)."""
    scale = delta.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
    return torch.round(delta / scale).clamp(-127, 127).to(torch.int8), scale.squeeze(1).float()


def save_compact(state: dict[str, torch.Tensor], folder: str | Path, base: str) -> dict:
    """Write `delta.safetensors` and `compact.json` for `state` (a tagger's state dict) against
    the installed backbone `base`; returns the record written to compact.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sha256, reference = base_state(base, state)
    tensors: dict[str, torch.Tensor] = {}
    unchanged = []
    for key, value in state.items():
        value = value.detach().float().cpu()
        if key in reference and reference[key].shape == value.shape:
            delta = value - reference[key].float()
            if not delta.any():
                unchanged.append(key)
            elif delta.dim() == 2:
                tensors[f"{key}.q"], tensors[f"{key}.scale"] = quantize_rows(delta)
            else:
                tensors[f"{key}.delta"] = delta.contiguous()
        else:
            tensors[f"{key}.full"] = value.contiguous()
    save_file(tensors, str(folder / DELTA_FILE), metadata={"format": "pt"})
    umask_mode(folder / DELTA_FILE)
    record = {"base": base, "base_sha256": sha256, "quantization": "int8 per-row delta",
              "unchanged": unchanged}
    (folder / COMPACT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_compact(folder: str | Path, model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The full state dict of a compact folder (model_state gives the names and shapes)."""
    folder = Path(folder)
    record = json.loads((folder / COMPACT_FILE).read_text())
    base = record["base"]
    sha256, reference = base_state(base, model_state)
    if sha256 != record["base_sha256"]:
        raise ValueError(f"{folder} was compacted against another version of backbone {base!r} (weights differ)")
    stored = load_file(str(folder / DELTA_FILE))
    state = {}
    for key in model_state:
        if f"{key}.full" in stored:
            state[key] = stored[f"{key}.full"]
        elif f"{key}.q" in stored:
            state[key] = reference[key].float() + stored[f"{key}.q"].float() * stored[f"{key}.scale"][:, None]
        elif f"{key}.delta" in stored:
            state[key] = reference[key].float() + stored[f"{key}.delta"]
        elif key in reference:
            state[key] = reference[key]
        else:
            raise ValueError(f"{folder / DELTA_FILE} has no weights for {key}")
    return state
