"""One encoder layer as an ONNX graph that runs its queries on a chosen subset of pieces.

The graph is the engine's `run_layer_active` in one call: keys and values from every piece
(halted ones with their frozen states), queries, attention output and feed-forward only at the
pieces named by `query_index`, so ONNX Runtime's fused kernels do what the torch layer does and
TOKEE's halting still removes work. Built by hand with `onnx.helper` (no exporter in between),
so that the int8 form can quantise activations per row, as `seqexit.quantize` does: a row's
result depends on that row alone, not on its batch.

Inputs:  hidden (batch, pieces, hidden) float32; key_mask (batch, pieces) int32, 1 at the
         pieces attended to; query_index (batch, queries) int64.
Output:  updated (batch, queries, hidden) float32, the layer's output at those pieces.
"""

from __future__ import annotations

import itertools
import math
import platform
from collections.abc import Collection, Sequence

import numpy as np
import torch

from ..encoders.base import LayerParts

OPSET = 20  # LayerNormalization (17), Gelu (20)
ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "relu": None}
_INT8_MAX = 127.0
PROJECTIONS = ("query", "key_value", "attn_out", "ffn_in", "ffn_out")


class GraphBuilder:
    """Nodes and initializers of one graph, with fresh names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._count = itertools.count(1)

    def branch(self) -> GraphBuilder:
        """A builder for a subgraph (an `If` branch): its own nodes; names and initializers
        shared with this graph, where the branch sees them."""
        child = GraphBuilder()
        child.initializers, child._count = self.initializers, self._count
        return child

    def name(self, stem: str) -> str:
        return f"{stem}_{next(self._count)}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], *, domain: str = "", **attributes) -> str:
        return self.ops(op_type, inputs, 1, domain=domain, **attributes)[0]

    def ops(self, op_type: str, inputs: list[str], n_outputs: int, *, domain: str = "", **attributes) -> list[str]:
        outputs = [self.name(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, domain=domain, **attributes))
        return outputs


def _weights(linear: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(in, out) weight and (out,) bias of a float `nn.Linear` as float32 numpy arrays."""
    weight = linear.weight.detach().float().cpu().numpy().T
    bias = linear.bias.detach().float().cpu().numpy()
    return weight, bias


def weight_levels() -> float:
    """Largest int8 weight magnitude: 127, or 63 on x86 without VNNI, whose u8 x s8 kernels add
    pairs of products in int16 (255 * 127 * 2 would saturate; 255 * 63 * 2 does not)."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return 63.0 if x86 and not (probe and probe()) else _INT8_MAX


def last_axis(g: GraphBuilder) -> str:
    """A (1,) int64 constant -1: the axes input of a reduction, Unsqueeze or Squeeze."""
    return g.const("last", np.array([-1], np.int64))


def axis(g: GraphBuilder, number: int) -> str:
    """A (1,) int64 constant `number` (see `last_axis`)."""
    return g.const("axis", np.array([number], np.int64))


def word_neighbours(g: GraphBuilder, value: str, offsets: Sequence[int], rank: int,
                    columns: Sequence[tuple[int, int]] | None = None) -> list[str]:
    """value (batch, words, ...) of `rank` dimensions -> per offset d, the same shape holding
    word i+d's value at word i, zeros past either end (one `Pad`, then one `Slice` per offset,
    its bounds constants: the end counts back from the padded end). columns: per offset, the
    (start, end) of the last axis to keep as well (a slice of that axis in the same `Slice`)."""
    before, after = max(0, -min(offsets)), max(0, max(offsets))
    pads = np.zeros(2 * rank, np.int64)
    pads[1], pads[rank + 1] = before, after
    padded = g.op("Pad", [value, g.const("pads", pads)])
    out = []
    for i, offset in enumerate(offsets):
        start, end = before + offset, offset - after or np.iinfo(np.int64).max  # end < 0: from the end
        axes = [1] if columns is None else [1, rank - 1]
        bounds = [[start], [end]] if columns is None else [[start, columns[i][0]], [end, columns[i][1]]]
        out.append(g.op("Slice", [padded, g.const("start", np.array(bounds[0], np.int64)),
                                  g.const("end", np.array(bounds[1], np.int64)), g.const("axes", np.array(axes, np.int64))]))
    return out


def row_zero_points(g: GraphBuilder, x: str) -> str:
    """(rows,) uint8 128s, one per row of x (rows, in): the zero points of `_projection`'s
    per-row quantisation, made once and shared by the products over the same rows."""
    rows = g.op("Slice", [g.op("Shape", [x]), g.const("start", np.array([0], np.int64)),
                          g.const("end", np.array([1], np.int64))])
    return zero_points(g, rows)


def zero_points(g: GraphBuilder, rows: str) -> str:
    """(rows,) uint8 128s for a (1,) int64 row count."""
    return g.op("Expand", [g.const("zp", np.array(128, np.uint8)), rows])


def _projection(g: GraphBuilder, x: str, weight: np.ndarray, bias: np.ndarray | None, int8: bool, stem: str,
                zero: str | None = None) -> str:
    """x (rows, in) @ weight (in, out) [+ bias; None: the caller's next operation adds it].
    int8: weights symmetric per output channel (`weight_levels`); each row of x quantised with
    its own scale max|row| / 127 (zero point 128, uint8; `zero`: those zero points from
    `row_zero_points`); the integer product rescaled per row and per column."""
    if not int8:
        product = g.op("MatMul", [x, g.const(f"{stem}_w", weight.astype(np.float32))])
    else:
        levels = weight_levels()
        column_scale = np.maximum(np.abs(weight).max(0), np.finfo(np.float32).tiny) / levels  # (out,)
        quantized = np.clip(np.round(weight / column_scale), -levels, levels).astype(np.int8)
        largest = g.op("ReduceMax", [g.op("Abs", [x]), g.const("axis", np.array([1], np.int64))], keepdims=1)
        # (rows, 1): the kernel scales row r by it, column c by column_scale[c]. A row of zeros
        # gets scale 0: whatever its codes, the product scales them to 0, which is its value.
        per_row = g.op("Mul", [largest, g.const("inv", np.array(1.0 / _INT8_MAX, np.float32))])
        row_scale = g.op("Reshape", [per_row, g.const("flat", np.array([-1], np.int64))])  # (rows,)
        codes = g.op("QuantizeLinear", [x, row_scale, zero or row_zero_points(g, x)], axis=0)  # (rows, in) uint8
        product = g.op("MatMulIntegerToFloat",
                       [codes, g.const(f"{stem}_q", quantized), per_row,
                        g.const(f"{stem}_s", column_scale.astype(np.float32)), g.const("zp128", np.array(128, np.uint8))],
                       domain="com.microsoft")  # (rows, out): (codes - 128) @ quantized * row_scale * column_scale
    # the bias is added apart: given to the int8 kernel with a per-row scale, it is added before that scale
    return product if bias is None else g.op("Add", [product, g.const(f"{stem}_b", bias.astype(np.float32))])


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} has no ONNX form here; known: {', '.join(ACTIVATIONS)}")


def _add_and_norm(g: GraphBuilder, x: str, bias: np.ndarray, residual: str, norm: torch.nn.LayerNorm, stem: str) -> str:
    """LayerNorm(x + bias + residual) over rows. (ONNX Runtime's fused SkipLayerNormalization
    measured 3-6% slower here, on rows, than these three operations.)"""
    summed = g.op("Add", [g.op("Add", [x, g.const(f"{stem}_bias", bias.astype(np.float32))]), residual])
    return g.op("LayerNormalization", [summed, g.const(f"{stem}_g", norm.weight.detach().float().numpy()),
                                       g.const(f"{stem}_b", norm.bias.detach().float().numpy())],
                axis=-1, epsilon=float(norm.eps))


def attention_weights(parts: LayerParts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query weight, query bias) scaled by 1/sqrt(head_dim), and the key|value weight, without
    their biases: the key's adds the same to every score of a query, which the softmax takes
    away, and the value's comes out of the attention unchanged (its weights sum to 1), so
    `output_and_feed_forward` adds it through the output projection. (ONNX Runtime's
    MultiHeadAttention runs ~25% faster on this CPU without a bias input.)"""
    scale = 1.0 / math.sqrt(parts.query.in_features // parts.num_heads)
    wq, bq = _weights(parts.query)
    wk, _ = _weights(parts.key)
    wv, _ = _weights(parts.value)
    return wq * scale, bq * scale, np.concatenate([wk, wv], 1)


def attend(g: GraphBuilder, parts: LayerParts, queries: str, keys: str, values: str, key_mask: str = "key_mask") -> str:
    """Multi-head attention: queries (batch, q, hidden), scaled and with their bias, over keys
    and values (batch, pieces, hidden) without theirs (`attention_weights`), with `key_mask`
    (batch, pieces) int32 -> (batch, q, hidden)."""
    return g.op("MultiHeadAttention", [queries, keys, values, "", key_mask], domain="com.microsoft",
                num_heads=parts.num_heads, scale=1.0)


def output_and_feed_forward(g: GraphBuilder, parts: LayerParts, activation: str, context: str, residual: str,
                            in_int8: dict[str, bool], zero: str | None = None) -> str:
    """The layer after attention, on rows: context (rows, hidden) through the output projection,
    + residual, LayerNorm, then the feed-forward block, + residual, LayerNorm -> (rows, hidden).
    The context comes without the value bias (`attention_weights`): it is added here, as its
    image under the output projection. zero: `row_zero_points` of these rows, if the caller has them."""
    if zero is None and any(in_int8[name] for name in ("attn_out", "ffn_in", "ffn_out")):
        zero = row_zero_points(g, context)
    wo, bo = _weights(parts.attn_out)
    bo = bo + _weights(parts.value)[1].astype(np.float64) @ wo.astype(np.float64)  # the value bias, projected
    projected = _projection(g, context, wo, None, in_int8["attn_out"], "attn_out", zero)
    attended = _add_and_norm(g, projected, bo, residual, parts.attn_norm, "attn_norm")
    w1, b1 = _weights(parts.ffn_in)
    inner = _projection(g, attended, w1, b1, in_int8["ffn_in"], "ffn_in", zero)
    approximate = ACTIVATIONS[activation]
    inner = g.op("Relu", [inner]) if approximate is None else g.op("Gelu", [inner], approximate=approximate)
    w2, b2 = _weights(parts.ffn_out)
    projected = _projection(g, inner, w2, None, in_int8["ffn_out"], "ffn_out", zero)
    return _add_and_norm(g, projected, b2, attended, parts.ffn_norm, "ffn_norm")


def queried_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, queries_from: str,
                  in_int8: dict[str, bool], key_zero: str | None = None) -> str:
    """One layer where only some pieces are queries: queries_from (batch, queries, hidden) the
    states of those pieces, hidden (batch, pieces, hidden) every piece's, keys and values ->
    the queries' new states (batch, queries, hidden). key_zero: the int8 zero points of every
    piece's row, where the caller has them."""
    size = parts.query.in_features
    rows = g.const("rows", np.array([-1, size], np.int64))
    query_shape, key_shape = g.op("Shape", [queries_from]), g.op("Shape", [hidden])
    residual = g.op("Reshape", [queries_from, rows])  # (batch * queries, hidden)
    zero = row_zero_points(g, residual) if any(in_int8.values()) else None  # queries and feed-forward
    wq, bq, wkv = attention_weights(parts)
    q = _projection(g, residual, wq, bq, in_int8["query"], "query", zero)  # already / sqrt(head_dim)
    kv = _projection(g, g.op("Reshape", [hidden, rows]), wkv, None, in_int8["key_value"], "key_value",
                     key_zero)  # (batch * pieces, 2 * hidden)
    k, v = g.ops("Split", [kv, g.const("halves", np.array([size, size], np.int64))], 2, axis=-1)
    context = attend(g, parts, g.op("Reshape", [q, query_shape]), g.op("Reshape", [k, key_shape]),
                     g.op("Reshape", [v, key_shape]))  # (batch, queries, hidden)
    out = output_and_feed_forward(g, parts, activation, g.op("Reshape", [context, rows]), residual, in_int8, zero)
    return g.op("Reshape", [out, query_shape])


def int8_projections(int8: bool, keep_float: Collection[str]) -> dict[str, bool]:
    """Which of a layer's projections run in int8."""
    return {name: int8 and name not in keep_float for name in PROJECTIONS}


def layer_graph(parts: LayerParts, activation: str, *, int8: bool = False, keep_float: Collection[str] = ()):
    """The ONNX model (an `onnx.ModelProto`) of one layer from float `parts` (see module doc).
    int8: every projection int8 except those named in `keep_float` (query, key_value,
    attn_out, ffn_in, ffn_out)."""
    from onnx import TensorProto, helper

    check_activation(activation)
    g = GraphBuilder()
    hidden_size = parts.query.in_features
    index = g.op("Unsqueeze", ["query_index", g.const("axis", np.array([-1], np.int64))])
    queries_from = g.op("GatherND", ["hidden", index], batch_dims=1)  # (batch, queries, hidden)
    updated = queried_layer(g, parts, activation, "hidden", queries_from, int8_projections(int8, keep_float))
    g.nodes.append(helper.make_node("Identity", [updated], ["updated"]))

    inputs = [
        helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "pieces", hidden_size]),
        helper.make_tensor_value_info("key_mask", TensorProto.INT32, ["batch", "pieces"]),
        helper.make_tensor_value_info("query_index", TensorProto.INT64, ["batch", "queries"]),
    ]
    outputs = [helper.make_tensor_value_info("updated", TensorProto.FLOAT, ["batch", "queries", hidden_size])]
    graph = helper.make_graph(g.nodes, "seqexit_layer", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="seqexit")
