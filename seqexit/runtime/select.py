"""Choosing and applying a runtime: `check_runtime` (the one validation), `pick_runtime`
("auto" resolved by timing both engines on this CPU, remembered per CPU and versions) and
`apply_runtime` (a model whose layers run on the chosen engine)."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Collection

import torch

from ..model import MultiExitTagger
from .cache import user_cache_dir
from .onnx_session import RuntimeMismatch

RUNTIME_CHOICES = ("auto", "torch", "onnx")
CLEARLY_FASTER = 0.9  # ONNX Runtime is picked when its layer takes under 90% of torch's time
PICK_VERSION = 3  # bump when `_layer_seconds` measures something else: earlier picks are measured again
INSTALL_HINT = "pip install 'seqexit[onnx]' (or: pip install onnxruntime onnx)"


def check_runtime(value: str | None) -> str:
    """'auto', 'torch' or 'onnx' ('auto' for None or ''); anything else is a ValueError naming the choices."""
    if value is None or value == "":
        return "auto"
    if value not in RUNTIME_CHOICES:
        raise ValueError(f"unknown runtime {value!r}; choose one of: {', '.join(RUNTIME_CHOICES)}")
    return value


def onnx_installed() -> bool:
    """Whether ONNX Runtime and onnx (to build the graphs) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def require_onnx() -> None:
    if not onnx_installed():
        raise ModuleNotFoundError(f"runtime 'onnx' needs ONNX Runtime and onnx: {INSTALL_HINT}")


def pick_runtime(model: MultiExitTagger, runtime: str | None, *, quantize: str | None = None,
                 device: str | torch.device = "cpu") -> str:
    """The engine `runtime` means for `model` here: 'torch' or 'onnx'. 'auto' is 'torch' off the
    CPU, for a model in training, for an encoder the ONNX graphs do not cover, or without ONNX
    Runtime installed; otherwise ONNX Runtime where it ran a layer of this model's size at least
    10% faster than torch on this CPU (timed once, then remembered in the user cache;
    SEQEXIT_RUNTIME overrides the pick)."""
    runtime = check_runtime(runtime)
    if runtime == "onnx":
        require_onnx()
        if torch.device(device).type != "cpu":
            raise ValueError(f"runtime 'onnx' runs on the CPU only; the model is on {device}")
        from .onnx_session import unsupported_reason

        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"runtime 'onnx' cannot run this model: {reason}; use runtime 'torch'")
        return "onnx"
    if runtime == "torch":
        return "torch"
    forced = os.environ.get("SEQEXIT_RUNTIME")
    if forced:
        return pick_runtime(model, forced, quantize=quantize, device=device)
    if torch.device(device).type != "cpu" or not onnx_installed():
        return "torch"
    from .onnx_session import unsupported_reason

    if unsupported_reason(model):
        return "torch"
    parts = model.adapter.layers[0]
    shape = (parts.query.in_features, parts.num_heads, parts.ffn_in.out_features)
    return _measured_pick(shape, quantize or "fp32", torch.get_num_threads())


@functools.cache
def _measured_pick(shape: tuple[int, int, int], precision: str, threads: int) -> str:
    """'onnx' where it ran a random layer of `shape` (hidden, heads, ffn) as the engine runs it
    (`_layer_seconds`) clearly faster than torch, else 'torch'; read from or written to the user cache."""
    key = "|".join(map(str, (PICK_VERSION, platform.processor() or platform.machine(), cpu_name(), torch.__version__,
                              _ort_version(), shape, precision, threads)))
    path = user_cache_dir() / "runtime_pick.json"
    try:
        known = json.loads(path.read_text())
        if isinstance(known, dict) and known.get(key) in ("torch", "onnx"):
            return known[key]
    except (OSError, ValueError):
        known = {}
    seconds = {name: _layer_seconds(name, shape, precision) for name in ("torch", "onnx")}
    # the reference engine unless ONNX Runtime is clearly faster: a near tie measured either way
    # from run to run here, and the end-to-end runs favoured torch at batch 32 (benchmarks/runtime_speed.md)
    choice = "onnx" if seconds["onnx"] < CLEARLY_FASTER * seconds["torch"] else "torch"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        known = known if isinstance(known, dict) else {}
        known[key] = choice
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: measure again next time
    return choice


def _layer_seconds(runtime: str, shape: tuple[int, int, int], precision: str) -> float:
    """Best of 6 timings (after a warm-up) of a random two-layer tagger of `shape` on `runtime`, as tagging runs it
    (`exit_batch` at full depth: on ONNX Runtime the exit graph, one call per batch): 32 rows of
    24 pieces, then one sentence of 20 pieces."""
    from ..encoders.light_bert import LightBertModel
    from ..exits.halting import exit_batch
    from ..exits.policy import ExitPolicy
    from ..model import MultiExitTagger, TaggerConfig
    from ..pieces import Batch

    hidden, heads, ffn = shape
    config = {"model_type": "bert", "hidden_size": hidden, "num_attention_heads": heads, "intermediate_size": ffn,
              "num_hidden_layers": 2, "vocab_size": 64, "max_position_embeddings": 32}
    torch.manual_seed(0)
    model = MultiExitTagger(LightBertModel(config), TaggerConfig(labels=[f"L{i}" for i in range(9)], scheme=None,
                                                                 task="pos")).eval()
    quantize = None if precision == "fp32" else precision
    try:
        model = apply_runtime(model, runtime, quantize=quantize)
    except Exception:  # noqa: BLE001 - an engine that cannot build here is not picked
        return math.inf

    def batch(rows: int, pieces: int) -> Batch:
        words = pieces - 2
        return Batch(torch.randint(1, 64, (rows, pieces)), torch.ones(rows, pieces, dtype=torch.bool),
                     torch.arange(1, words + 1).expand(rows, words).contiguous(), torch.ones(rows, words, dtype=torch.bool))

    batches, policy = (batch(32, 24), batch(1, 20)), ExitPolicy()
    best = None
    with torch.inference_mode(), model.adapter.running():
        for _ in range(7):  # the first pass warms the kernels up and is not counted
            started = time.perf_counter()
            for b in batches:
                exit_batch(model, b, policy)
            best = min(best, time.perf_counter() - started) if best is not None else math.inf
    return best


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name and the widest vector instructions it has, e.g. "AMD EPYC (AVX2)":
    kernels' speed, and so every timing, depends on both (the same name comes with AVX2 only or
    with AVX-512 on different hosts); "" where /proc/cpuinfo cannot be read."""
    info: dict[str, str] = {}
    try:
        with open(cpuinfo) as lines:
            for key, _, value in (line.partition(":") for line in lines):
                info.setdefault(key.strip(), value)
    except OSError:
        return ""
    name = " ".join(info.get("model name", "").split())
    flags = set(info.get("flags", "").split())
    isa = [label for flag, label in (("amx_tile", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512_vnni", "AVX512-VNNI"),
                                     ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags]
    if "AVX-512" in isa:  # implies AVX2
        isa = [label for label in isa if label != "AVX2"]
    return f"{name} ({', '.join(isa)})" if isa else name


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "none"


def apply_runtime(model: MultiExitTagger, runtime: str, *, quantize: str | None = None,
                  keep_float: Collection[str] = (), inplace: bool = False, cache_dir=None) -> MultiExitTagger:
    """`model` (float) with its layers on `runtime` in `quantize` precision (None or 'int8'):
    'torch', 'onnx' (a ValueError where it cannot run this model here), or 'auto' (`pick_runtime`;
    torch, with a RuntimeWarning, if the ONNX layers fail their check against torch's). The
    result's `runtime` says which ran. A copy unless `inplace` (the tokenizer is shared).
    cache_dir: where the ONNX graphs are kept (see `onnx_session`)."""
    if runtime == "torch":
        if quantize:
            from ..quantize import quantize_model

            return quantize_model(model, quantize, keep_float=keep_float, inplace=inplace)
        return model
    device = next(model.parameters()).device
    if check_runtime(runtime) == "auto":
        try:
            return apply_runtime(model, pick_runtime(model, "auto", quantize=quantize, device=device),
                                 quantize=quantize, keep_float=keep_float, inplace=inplace, cache_dir=cache_dir)
        except RuntimeMismatch as err:
            warnings.warn(f"{err}; running on torch instead", RuntimeWarning, stacklevel=2)
            return apply_runtime(model, "torch", quantize=quantize, keep_float=keep_float, inplace=inplace)
    pick_runtime(model, "onnx", quantize=quantize, device=device)  # installed, on the CPU, an encoder it covers
    if model.quantized:
        raise ValueError(f"the ONNX runtime builds its graphs from float weights; the model is {model.quantized}")
    from .onnx_exits import ExitGraphs
    from .onnx_layers import OnnxAdapter
    from .onnx_session import layer_sessions

    if not inplace:
        shared = {id(model.tokenizer): model.tokenizer, id(model.pieces): model.pieces}
        model = copy.deepcopy(model, memo=shared)
    model.eval()
    activation = model.encoder.config.hidden_act
    sessions = layer_sessions(model.adapter, activation, quantize, keep_float=keep_float, cache=cache_dir)
    exit_graphs = ExitGraphs(model.adapter, model.exits, activation, quantize, keep_float=keep_float, cache=cache_dir)
    model.adapter = OnnxAdapter(model.adapter, sessions, "onnx" + (f"-{quantize}" if quantize else ""), exit_graphs)
    model.quantized = quantize
    model.runtime = "onnx"
    return model
