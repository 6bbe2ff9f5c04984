"""ONNX Runtime sessions for an encoder's layers: built from the float weights, or read from
the graph cache without importing `onnx` at all (what makes a warm start fast)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import torch

from ..encoders.base import EncoderAdapter, LayerParts
from .cache import cached_bytes, tensors_digest
from .onnx_graph import PROJECTIONS

GRAPH_VERSION = 5  # bump when `onnx_graph` changes what it builds: old cache files stop matching


def unsupported_reason(model) -> str | None:
    """Why the ONNX graphs cannot run `model`'s layers (None: they can)."""
    from .onnx_graph import ACTIVATIONS

    adapter = model.adapter
    if type(adapter).__name__ not in ("BertFamilyAdapter", "OnnxAdapter"):
        return f"no ONNX layer graph for {type(adapter).__name__}"
    activation = getattr(model.encoder.config, "hidden_act", None)
    if activation not in ACTIVATIONS:
        return f"activation {activation!r} has no ONNX form here (known: {', '.join(ACTIVATIONS)})"
    if model.quantized and getattr(model, "runtime", "torch") != "onnx":
        return f"the model is already quantized for torch ({model.quantized})"
    return None


def session_options(threads: int | None = None, *, spin: bool = False):
    """An intra-op pool of `threads` (default: torch's thread count), no inter-op pool, every
    graph optimisation on. spin: the pool's threads spin a while after each call instead of
    going to sleep at once, for sessions called back to back (the exit graphs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Layer sessions are called in turn with torch working in between: a pool that spins after
    # its call takes the cores from the next layer's pool and from torch (measured here:
    # batch 1 6x slower at 2 threads). An exit graph is one call per batch from one pool,
    # with only a little host work in between: there, spinning saves waking the pool's
    # threads for each of its operations (batch 1, measured in one process per setting on
    # CoNLL-2003 test: fp32 full depth 0.86x -> 0.98x ONNX Runtime's own graph, int8
    # accurate 0.79x -> 0.85x; batch 32 unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return options


def layer_tensors(parts: LayerParts) -> list[torch.Tensor]:
    modules = (parts.query, parts.key, parts.value, parts.attn_out, parts.attn_norm, parts.ffn_in, parts.ffn_out,
               parts.ffn_norm)
    return [tensor for module in modules for tensor in (module.weight, module.bias)]


def layer_sessions(adapter: EncoderAdapter, activation: str, quantize: str | None, *,
                   keep_float: Collection[str] = (), cache: Path | None = None, threads: int | None = None) -> list:
    """One `onnxruntime.InferenceSession` per layer of `adapter` (float weights), int8 where
    `quantize` is 'int8' except the projections named in `keep_float` (as in
    `seqexit.quantize.quantize_model`), opened on first use (layer 1 now, to check it against
    torch). cache: the folder of built graphs (None: none)."""
    import onnxruntime as ort

    from .onnx_graph import weight_levels

    options = session_options(threads)

    def open_session(data: bytes):
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def open_layer(index: int):
        parts = adapter.layers[index]
        kept = frozenset(name for name in PROJECTIONS if name in keep_float or f"L{index + 1}.{name}" in keep_float)
        settings = (GRAPH_VERSION, ort.__version__, activation, quantize, sorted(kept), parts.num_heads, weight_levels())

        def build() -> bytes:
            from .onnx_graph import layer_graph

            return layer_graph(parts, activation, int8=quantize == "int8", keep_float=kept).SerializeToString()

        return cached_bytes(cache, tensors_digest(layer_tensors(parts), *settings), build, open_session)

    sessions = LayerSessions(open_layer, adapter.num_layers)
    check_against_torch(adapter, sessions[0], quantize)
    return sessions


class LayerSessions(Sequence):
    """One session per layer, each opened when first used: tagging with an exit graph needs
    none of them, and opening six took a quarter of a second of every start."""

    def __init__(self, open_layer: Callable[[int], object], count: int) -> None:
        self._open, self._sessions = open_layer, [None] * count

    def __len__(self) -> int:
        return len(self._sessions)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if self._sessions[index] is None:
            self._sessions[index] = self._open(range(len(self))[index])
        return self._sessions[index]


class RuntimeMismatch(RuntimeError):
    """The ONNX layer disagrees with the torch layer it was built from (a kernel this
    onnxruntime computes differently): the caller falls back to torch or stops."""


def disagreement(got: torch.Tensor, want: torch.Tensor, quantize: str | None, *,
                 int8_bound: float) -> tuple[float, float, str]:
    """(error, bound, how measured) of an ONNX output against torch's: fp32 by its largest
    single difference (bound 1e-3); int8 as a whole, the L2 norm of the difference relative to
    the output's (bound `int8_bound`), because rounding's largest single error varies by CPU."""
    if quantize is None:
        return float((got - want).abs().max()), 1e-3, "at most"
    return float((got - want).norm() / want.norm()), int8_bound, "relative"


def check_against_torch(adapter: EncoderAdapter, session, quantize: str | None) -> None:
    """Run layer 1 on a small random input in both engines; a RuntimeMismatch unless they agree
    (fp32: each value within 1e-3; int8: within 10% in L2 norm, as a whole). Costs a few
    milliseconds, once per load, and catches an onnxruntime whose kernels do not do what the
    graph says (a wrong kernel is off by ~100%). int8 is compared as a whole because its largest
    single error depends on the CPU: 63-level weights (`weight_levels`, x86 without VNNI) put
    one value of en-ner's layer 1 off by 11-21% of the output's range, the whole by 4-5%."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 7, adapter.hidden_size, generator=generator)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.inference_mode():
        want = adapter.run_layer(0, hidden.clone(), mask)[mask]
    feed = {"hidden": hidden.numpy(), "key_mask": mask.to(torch.int32).numpy(),
            "query_index": torch.arange(7).expand(2, 7).contiguous().numpy()}
    got = torch.from_numpy(session.run(("updated",), feed)[0])[mask]
    error, bound, what = disagreement(got, want, quantize, int8_bound=0.1)
    if not error <= bound:
        import onnxruntime

        raise RuntimeMismatch(f"onnxruntime {onnxruntime.__version__}'s layer differs from torch's by {error:.3g} "
                              f"({what}; allowed {bound:.3g}, {quantize or 'fp32'})")
