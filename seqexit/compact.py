"""Compact model folders: only what fine-tuning changed, against a backbone the user has installed.

A fine-tuned MiniLM tagger is 90 MB of float32, most of it the backbone's own weights (the
word-piece embeddings are never trained at all). A compact folder stores, per tensor, the change
from the backbone: matrices as int8 deltas with one float scale per row, vectors (biases,
LayerNorms) and the exits whole; unchanged tensors not at all. `compact.json` names the backbone
and the SHA-256 of its weights, so a delta is never applied to the wrong base. Loading rebuilds
the full state dict. This module is the codec; the model bundle (`seqexit.bundle`) reads and
writes the files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from .backbones import backbone_weights, resolve_backbone

ENCODER_PREFIX = "encoder."


def base_weights_file(base: str) -> Path:
    """The backbone's model.safetensors (a pytorch_model.bin is a pickle: never read)."""
    return backbone_weights(resolve_backbone(base))


def base_state(base: str, model_state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """(SHA-256 of the backbone's weights file, its weights under the tagger's names:
    `encoder.` + the Hugging Face name), from one read of the file."""
    file = base_weights_file(base)
    raw = file.read_bytes()
    try:
        loaded = load(raw)
    except SafetensorError as err:
        raise ValueError(f"{file}: not a readable safetensors file, truncated or damaged ({err})") from None
    names = {k.removeprefix("bert."): v for k, v in loaded.items()}
    state = {key: names[key[len(ENCODER_PREFIX):]] for key in model_state
             if key.startswith(ENCODER_PREFIX) and key[len(ENCODER_PREFIX):] in names}
    return hashlib.sha256(raw).hexdigest(), state


def quantize_rows(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 values, float32 scale per row)."""
    scale = delta.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
    return torch.round(delta / scale).clamp(-127, 127).to(torch.int8), scale.squeeze(1).float()


def encode_deltas(state: dict[str, torch.Tensor], base: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors to store, the record that names the base) for `state` (a tagger's state dict)
    against the installed backbone `base`."""
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
    record = {"base": base, "base_sha256": sha256, "quantization": "int8 per-row delta", "unchanged": unchanged}
    return tensors, record


def decode_deltas(
    stored: dict[str, torch.Tensor], record: dict, model_state: dict[str, torch.Tensor], where: str | Path
) -> dict[str, torch.Tensor]:
    """The full state dict from stored deltas and their record (model_state gives the names and
    shapes); `where` names the folder in errors."""
    base = record["base"]
    sha256, reference = base_state(base, model_state)
    if sha256 != record["base_sha256"]:
        raise ValueError(f"{where} was compacted against another version of backbone {base!r} (weights differ)")
    state = {}
    stacked = _dequantized(stored, reference, [key for key in model_state if f"{key}.full" not in stored])
    for key in model_state:
        if f"{key}.full" in stored:
            state[key] = stored[f"{key}.full"]
        elif key in stacked:
            state[key] = stacked[key]
        elif f"{key}.q" in stored:
            state[key] = reference[key].float() + stored[f"{key}.q"].float() * stored[f"{key}.scale"][:, None]
        elif f"{key}.delta" in stored:
            state[key] = reference[key].float() + stored[f"{key}.delta"]
        elif key in reference:
            state[key] = reference[key]
        else:
            raise ValueError(f"{where}: the stored deltas have no weights for {key}")
    return state


def _dequantized(stored: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                 keys: list[str]) -> dict[str, torch.Tensor]:
    """reference + int8 delta * row scale for the well-formed matrices among `keys` (the others
    take the per-matrix path, which reports what is wrong), as a few large tensor ops over the matrices
    stacked by width rather than three small ones per matrix: each op is a parallel region, and
    on a busy machine every region waits for a preempted thread (0.6 s -> 0.1 s on 2 shared
    cores). Every element is computed as before, so the result is bit for bit the same."""
    def stackable(key: str) -> bool:
        q, scale = stored.get(f"{key}.q"), stored.get(f"{key}.scale")
        return (q is not None and scale is not None and key in reference and q.dtype == torch.int8 and q.dim() == 2
                and scale.dtype == torch.float32 and scale.shape == q.shape[:1] and reference[key].shape == q.shape)

    keys = [key for key in keys if stackable(key)]
    out: dict[str, torch.Tensor] = {}
    for width in sorted({stored[f"{key}.q"].shape[1] for key in keys}):
        group = [key for key in keys if stored[f"{key}.q"].shape[1] == width]
        q = torch.cat([stored[f"{key}.q"] for key in group])
        scale = torch.cat([stored[f"{key}.scale"] for key in group])
        base = torch.cat([reference[key].float() for key in group])
        rows = torch.split(base + q.float() * scale[:, None], [stored[f"{key}.q"].shape[0] for key in group])
        out.update(zip(group, rows))
    return out
