"""How the encoder's layers execute: one switch, `runtime=`, over interchangeable engines.

- "torch": the reference (training, GPU, every encoder), eager PyTorch kernels; int8 through
  `seqexit.quantize`.
- "onnx": each layer an ONNX Runtime session built from the model's float weights
  (`onnx_graph`), fp32 or int8 with per-row activation scales; CPU only.
- "auto" (the default): ONNX Runtime where it measures clearly (10%) faster than torch on
  this CPU, else torch (`pick_runtime`).

The engine above the layers (exits, halting, batching) is the same whichever runs them.
"""

from __future__ import annotations

from .select import RUNTIME_CHOICES, apply_runtime, check_runtime, onnx_installed, pick_runtime

__all__ = ["RUNTIME_CHOICES", "apply_runtime", "check_runtime", "onnx_installed", "pick_runtime"]
