"""int8 execution on the CPU: the encoder's linear layers as dynamic int8 kernels.

Early exit removes layers per word; int8 makes every layer that still runs cheaper, and the two
compose because the engine calls the same `LayerParts` modules either way (halted words stay
out of the packed products). The kernels are torch's dynamic int8 `Linear`
(`torch.ao.nn.quantized.dynamic`): weights int8 with one scale per output channel, activations
with all 8 bits where the CPU allows it and one scale per row (`Int8Linear`: a word's result
does not depend on what else is in its batch or packed product). Measured here (2 threads,
640 x 384 x 1536, the feed-forward shape): fp32 2.5 ms, FBGEMM/x86 int8 0.95 ms, oneDNN int8
(AMX) 0.5 ms, a hand-written `torch._int_mm` path 3.4 ms; torchao's int8 configs were slower
than fp32 in eager mode on the CPU. The backend is picked by timing on the user's CPU
(`int8_backend`). Embeddings, LayerNorms, attention and the exits stay in float. This module
is the only place that knows the kernels: swap them here when torch drops `torch.ao`.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
import warnings
from collections.abc import Collection

import torch
from torch import nn

from .encoders import adapter_for
from .model import MultiExitTagger

QUANTIZE_CHOICES = ("none", "int8")
LAYER_PROJECTIONS = ("query", "key_value", "attn_out", "ffn_in", "ffn_out")


def check_quantize(value: str | None) -> str | None:
    """'int8' or None (for None, '' or 'none'); anything else is a ValueError naming the choices."""
    if value is None or value in ("", "none"):
        return None
    if value not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize value {value!r}; choose one of: {', '.join(QUANTIZE_CHOICES)}")
    return value


def quantize_model(
    model: MultiExitTagger, mode: str | None = "int8", *, keep_float: Collection[str] = (), inplace: bool = False
) -> MultiExitTagger:
    """`model` with its encoder layers' linear projections as int8 kernels (CPU only).

    keep_float: projections left in float, by name (see LAYER_PROJECTIONS) or as "L<k>.name" for
    one layer (1-based), e.g. {"ffn_out"} or {"L6.ffn_out"}. Returns a copy unless `inplace`
    (the tokenizer is shared, never copied). The result is for inference: it has no gradients
    and cannot be saved; quantise again after loading the float model."""
    if check_quantize(mode) is None:
        return model
    if model.quantized:
        raise ValueError(f"the model is already quantized ({model.quantized})")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"int8 kernels run on the CPU only; the model is on {device}")
    unknown = {name.split(".")[-1] for name in keep_float} - set(LAYER_PROJECTIONS)
    if unknown:
        raise ValueError(f"unknown projection(s) {sorted(unknown)}; choose from: {', '.join(LAYER_PROJECTIONS)}")
    if not inplace:
        shared = {id(model.tokenizer): model.tokenizer, id(model.pieces): model.pieces}
        model = copy.deepcopy(model, memo=shared)
    model.eval()
    key_values = nn.ModuleList()
    for index, parts in enumerate(model.adapter.layers):
        kept = {name for name in LAYER_PROJECTIONS if name in keep_float or f"L{index + 1}.{name}" in keep_float}
        fused = nn.Linear(parts.key.in_features, 2 * parts.key.out_features)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([parts.key.weight, parts.value.weight]))
            fused.bias.copy_(torch.cat([parts.key.bias, parts.value.bias]))
        key_values.append(fused if "key_value" in kept else int8_linear(fused))
        for name in ("query", "attn_out", "ffn_in", "ffn_out"):
            if name not in kept:
                module = getattr(parts, name)
                _replace(model.encoder, module, int8_linear(module))
    # the fused key/value product is the one the engine uses at inference; the model owns it
    model.int8_key_values = key_values
    model.adapter = adapter_for(model.encoder)
    for parts, key_value in zip(model.adapter.layers, key_values):
        parts.key_value = key_value
    if int8_backend() == "onednn":
        model.adapter.pad_rows = rows_beside_anchor
    model.quantized = "int8"
    return model


def int8_linear(linear: nn.Linear) -> nn.Module:
    """An int8 copy of `linear`: per-output-channel weight scales, activations quantised per
    row (see `Int8Linear`), float in and out."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    engine = torch.backends.quantized.engine
    with warnings.catch_warnings():  # torch.ao's deprecation notice, once per module otherwise
        warnings.simplefilter("ignore")
        source = nn.Linear(linear.in_features, linear.out_features, bias=False)  # the bias stays in float
        source.weight = linear.weight
        source.qconfig = per_channel_dynamic_qconfig
        try:
            torch.backends.quantized.engine = int8_backend()
            quantized = _int8_linear_class().from_float(source)
        finally:
            torch.backends.quantized.engine = engine
    quantized.full_range = full_range_activations()
    quantized.pad_to_bucket = int8_backend() == "onednn"
    quantized.float_bias = None if linear.bias is None else linear.bias.detach().clone()
    quantized.anchor = torch.linspace(-1.0, 1.0, linear.in_features)
    return quantized


def bucket_rows(rows: int) -> int:
    """`rows` rounded up to one of a few hundred sizes. oneDNN builds (JIT-compiles) a kernel
    for every new input shape, measured here at 1.8 ms against 0.5 ms for the product itself;
    TOKEE's packed products have a new row count at almost every call, so they are padded to
    a size whose kernel is already cached: at most 15 rows below 256, then 1/8 or less. The
    engine pads its packed rows itself (no copy); `Int8Linear` pads whatever else comes."""
    for limit, step in ((256, 16), (4096, 32)):
        if rows <= limit:
            return -(-rows // step) * step
    return -(-rows // 128) * 128


def rows_beside_anchor(rows: int) -> int:
    """The engine's padded row count on oneDNN: one below a bucket size, so that with the
    kernel's anchor row (`Int8Linear`) the product runs on a cached shape."""
    return bucket_rows(rows + 1) - 1


_TINY = torch.finfo(torch.float32).tiny


@functools.cache
def int8_backend() -> str:
    """The quantized backend whose int8 products run fastest on this CPU, by measurement: a
    layer-sized product (640 x 384 x 1536) timed with each backend torch has (oneDNN uses AMX
    where the CPU has it: 1.9x FBGEMM's speed here). SEQEXIT_INT8_BACKEND overrides the choice."""
    supported = torch.backends.quantized.supported_engines
    forced = os.environ.get("SEQEXIT_INT8_BACKEND")
    if forced:
        if forced not in supported:
            raise ValueError(f"SEQEXIT_INT8_BACKEND={forced!r} is not one of this torch's: {', '.join(supported)}")
        return forced
    candidates = [name for name in ("onednn", "x86", "fbgemm") if name in supported]
    if len(candidates) < 2:
        return candidates[0] if candidates else torch.backends.quantized.engine
    return min(candidates, key=_product_seconds)


def _product_seconds(backend: str) -> float:
    """Best of 5 timings of one dynamic int8 product packed and run with `backend`."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    generator = torch.Generator().manual_seed(0)
    linear = nn.Linear(384, 1536)
    linear.qconfig = per_channel_dynamic_qconfig
    x = torch.randn(640, 384, generator=generator)
    engine = torch.backends.quantized.engine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.quantized.engine = backend
            packed = DynamicInt8Linear.from_float(linear)._packed_params._packed_params
        with torch.inference_mode():
            best = math.inf
            for _ in range(8):
                started = time.perf_counter()
                torch.ops.quantized.linear_dynamic(x, packed, reduce_range=True)
                best = min(best, time.perf_counter() - started)
        return best
    except RuntimeError:  # a backend this CPU or build cannot run
        return math.inf
    finally:
        torch.backends.quantized.engine = engine


def full_range_activations() -> bool:
    """Whether activations can use all 8 bits. Without VNNI, FBGEMM's AVX2 kernels add pairs of
    u8 x s8 products in int16, which saturates unless activations keep to 7 bits (torch's
    default, `reduce_range=True`); VNNI and AMX accumulate in int32 and need no such margin."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(probe and probe() and torch.backends.quantized.engine in ("x86", "fbgemm"))


_CLASS: type | None = None


def _int8_linear_class() -> type:
    """torch's dynamic int8 Linear, with the activation range chosen per CPU (see
    `full_range_activations`) instead of always 7 bits."""
    global _CLASS
    if _CLASS is None:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

        class Int8Linear(DynamicInt8Linear):
            """Per-row activation scales around torch's per-call kernel: row r runs as
            x_r / s_r (s_r = max|x_r|) beside one fixed anchor row spanning exactly [-1, 1], so
            the kernel's per-call range, hence its activation scale and zero point, is the same
            at every call; then y_r = s_r * (x_r / s_r) W^T + b. A row's result depends on that
            row alone (the integer products are exact, the float epilogue is per element), not
            on the batch, its order or the padding. The weights are packed without the bias,
            which is added in float after the rescaling."""

            full_range = False
            pad_to_bucket = False  # round the row count (anchor included) up with `bucket_rows` (oneDNN)
            float_bias: torch.Tensor | None = None
            anchor: torch.Tensor  # (in_features,): -1 ... 1

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                packed = self._packed_params._packed_params
                rows = x.reshape(-1, x.shape[-1]).float()
                n = rows.shape[0]
                total = bucket_rows(n + 1) if self.pad_to_bucket else n + 1
                scale = rows.abs().amax(1, keepdim=True).clamp_min_(_TINY)  # (n, 1)
                scaled = rows.new_empty(total, rows.shape[1])
                torch.div(rows, scale, out=scaled[:n])
                scaled[n:] = self.anchor  # the anchor, and any padding rows as more anchors
                out = torch.ops.quantized.linear_dynamic(scaled, packed, reduce_range=not self.full_range)[:n]
                # in place: a second output-sized allocation per call measured 10x slower here
                out = out.mul_(scale) if self.float_bias is None else torch.addcmul(self.float_bias, out, scale, out=out)
                return out.to(x.dtype).view(*x.shape[:-1], out.shape[-1])

        _CLASS = Int8Linear
    return _CLASS


def _replace(parent: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Swap the submodule `old` (somewhere under `parent`) for `new`, found by identity so that
    any encoder family's layout works."""
    for name, module in parent.named_modules():
        if module is old:
            owner_name, _, attribute = name.rpartition(".")
            setattr(parent.get_submodule(owner_name) if owner_name else parent, attribute, new)
            return
    raise ValueError("projection not found in the encoder")
