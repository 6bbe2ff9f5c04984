"""A batch's whole early-exit loop as one ONNX graph: every layer, every exit, the doubt, its
window and the halting, so that ONNX Runtime runs a batch (or one sentence) in a single call
instead of one call per layer with torch deciding in between.

Modes: "fixed" (full depth or a static exit: `depth` layers, one exit read) and "tokee" /
"sentee" under the "entropy" or "confidence" criterion, with the engine's semantics
(`seqexit.exits.halting`): a halted word keeps its logits and doubt, its pieces stay keys and
values with frozen states, and later layers run queries, attention output and feed-forward
only on the running pieces, packed across the batch (a layer with none left is skipped). The
other criteria remember more than a doubt per word and run layer by layer (`onnx_layers`).

Inputs:  hidden (batch, pieces, hidden) float32: with `EmbeddingParts`, each piece's word
         vector (a lookup the caller does, so that the vocabulary table is not copied into
         every graph) and the graph adds the token type, the position, LayerNorm and the
         casing vectors of casing_ids (batch, pieces) int64; without, the embeddings (torch's);
         key_mask (batch, pieces) int32, 1 at real pieces; word_starts (batch, words) int64;
         word_mask (batch, words) bool. Dynamic modes also: bounds (layers,) float32, the
         doubt bound per layer; "confidence": temperatures (layers,) float32.
Outputs: logits (batch, words, labels) float32 at each word's exit; dynamic modes also
         exit_layer (batch, words) int64, 1-based, 0 on padding, and queries (batch,) int64,
         the layers each piece ran as a query, summed over the row's pieces (what the FLOP
         count needs, `seqexit.exits.flops`), so that nothing per piece is left to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ..encoders.base import EmbeddingParts, LayerParts
from .onnx_graph import (
    OPSET, PROJECTIONS, GraphBuilder, _projection, _weights, check_activation, int8_projections, output_and_feed_forward,
    row_zero_points, zero_points,
)

FUSED_CRITERIA = ("entropy", "confidence")  # criteria whose whole state is one doubt per word


@dataclass(frozen=True)
class ExitGraphSpec:
    """What one exit graph computes; everything else (thresholds, temperatures) is an input."""

    mode: str  # "fixed", "tokee" or "sentee"
    depth: int  # layers run: the static exit's layer, or every layer
    window: int = 0  # half-width of the doubt window (dynamic modes)
    criterion: str = "entropy"

    @property
    def dynamic(self) -> bool:
        return self.mode != "fixed"


def spec_for(policy, num_layers: int) -> ExitGraphSpec | None:
    """The graph that runs `policy` (an `ExitPolicy`) in one call, or None where its criterion
    keeps more state than the graph carries (patience, rising, vote, learned)."""
    if policy.mode in ("full", "static"):
        return ExitGraphSpec("fixed", policy.exit_depth(num_layers))
    if policy.criterion not in FUSED_CRITERIA:
        return None
    return ExitGraphSpec(policy.mode, num_layers, policy.window, policy.criterion)


def exit_graph(layers: Sequence[LayerParts], exits: Sequence, spec: ExitGraphSpec, activation: str, *,
               int8: bool = False, keep_float: Collection[str] = (), embedding: EmbeddingParts | None = None):
    """The ONNX model (`onnx.ModelProto`) of `spec` over float `layers` and exit heads `exits`
    (`ExitHead`s). int8: projections int8 as in `onnx_graph.layer_graph`, except those named in
    `keep_float` ("query", or "L2.query" for one layer); the exits stay float. embedding: the
    graph finishes the embeddings from word vectors (see the module doc)."""
    from onnx import TensorProto, helper

    check_activation(activation)
    g = GraphBuilder()
    g.nodes.append(helper.make_node("Cast", ["key_mask"], ["key_mask_bool"], to=TensorProto.BOOL))
    hidden = "hidden" if embedding is None else _embeddings(g, embedding)
    starts = g.op("Unsqueeze", ["word_starts", _last_axis(g)])  # (batch, words, 1)
    precisions = [int8_projections(int8, {name for name in PROJECTIONS if name in keep_float
                                          or f"L{index + 1}.{name}" in keep_float}) for index in range(spec.depth)]
    # the int8 zero points of every piece's row, shared by all products over every piece
    every_piece = zero_points(g, g.op("ReduceProd", [g.op("Shape", ["key_mask"])], keepdims=1)) if int8 else None
    if spec.dynamic:
        owner = _piece_owner(g)
        logits, exit_layer = _halting_loop(g, layers, exits, spec, activation, hidden, starts, owner, precisions,
                                           every_piece)
        g.nodes.append(helper.make_node("Identity", [exit_layer], ["exit_layer"]))
        g.nodes.append(helper.make_node("Identity", [_queries(g, exit_layer, owner)], ["queries"]))
    else:
        for index in range(spec.depth):
            hidden = _full_layer(g, layers[index], activation, hidden, precisions[index], every_piece)
        logits = _exit_logits(g, exits[spec.depth - 1], hidden, starts)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    inputs, outputs = _signature(spec, layers[0].query.in_features, exits[0].linear.out_features,
                                 embedding is not None and embedding.casing is not None)
    graph = helper.make_graph(g.nodes, "seqexit_exits", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="seqexit")


def _halting_loop(g: GraphBuilder, layers, exits, spec: ExitGraphSpec, activation: str, hidden: str, starts: str,
                  owner: str, precisions: list[dict[str, bool]], every_piece: str | None) -> tuple[str, str]:
    """TOKEE/SENTEE over every layer from the embeddings `hidden`: (logits at each word's exit,
    exit layers) as graph values. every_piece: int8 zero points of every piece's row."""
    from onnx import TensorProto

    active = "word_mask"  # (batch, words) bool: words still running
    for index in range(spec.depth):
        if index == 0:  # every word runs the first layer
            hidden = _full_layer(g, layers[0], activation, hidden, precisions[0], every_piece)
        else:
            hidden = _active_layer(g, layers[index], activation, hidden, _running_pieces(g, active, owner),
                                   precisions[index], every_piece)
        step = _exit_logits(g, exits[index], hidden, starts)  # (batch, words, labels)
        doubt = _doubt(g, spec.criterion, step, index, exits[0].linear.out_features)  # (batch, words)
        if index == 0:
            logits, doubts = step, doubt
            exit_layer = g.op("Cast", ["word_mask"], to=TensorProto.INT64)
        else:  # a halted word keeps what it had when it halted
            logits = g.op("Where", [g.op("Unsqueeze", [active, _last_axis(g)]), step, logits])
            doubts = g.op("Where", [active, doubt, doubts])
            exit_layer = g.op("Add", [exit_layer, g.op("Cast", [active], to=TensorProto.INT64)])
        if index == spec.depth - 1:  # the last layer ends every word anyway
            break
        bound = g.op("Gather", ["bounds", g.const("layer", np.array(index, np.int64))])
        certain = g.op("Less", [_window_max(g, doubts, spec.window), bound])  # (batch, words)
        if spec.mode == "sentee":  # a sentence halts when all its words are certain
            every = g.op("Cast", [g.op("Or", [certain, g.op("Not", ["word_mask"])])], to=TensorProto.INT32)
            certain = g.op("Cast", [g.op("ReduceMin", [every, _axis(g, 1)], keepdims=1)], to=TensorProto.BOOL)  # (batch, 1)
        active = g.op("And", [active, g.op("Not", [certain])])
    return logits, exit_layer


def _signature(spec: ExitGraphSpec, hidden_size: int, labels: int, casing: bool) -> tuple[list, list]:
    """The graph's inputs and outputs (see the module doc)."""
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "pieces", hidden_size]),
        helper.make_tensor_value_info("key_mask", TensorProto.INT32, ["batch", "pieces"]),
        helper.make_tensor_value_info("word_starts", TensorProto.INT64, ["batch", "words"]),
        helper.make_tensor_value_info("word_mask", TensorProto.BOOL, ["batch", "words"]),
    ]
    if casing:
        inputs.append(helper.make_tensor_value_info("casing_ids", TensorProto.INT64, ["batch", "pieces"]))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "words", labels])]
    if spec.dynamic:
        inputs.append(helper.make_tensor_value_info("bounds", TensorProto.FLOAT, [spec.depth]))
        if spec.criterion == "confidence":
            inputs.append(helper.make_tensor_value_info("temperatures", TensorProto.FLOAT, [spec.depth]))
        outputs += [helper.make_tensor_value_info("exit_layer", TensorProto.INT64, ["batch", "words"]),
                    helper.make_tensor_value_info("queries", TensorProto.INT64, ["batch"])]
    return inputs, outputs


def _embeddings(g: GraphBuilder, parts: EmbeddingParts) -> str:
    """Word vectors "hidden" (batch, pieces, hidden) -> the embeddings: + token type 0, +
    position 0..pieces-1, LayerNorm, + casing vectors; the sums in torch's order."""
    def array(t) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    pieces = g.op("Slice", [g.op("Shape", ["hidden"]), g.const("start", np.array([1], np.int64)),
                            g.const("end", np.array([2], np.int64))])
    positions = g.op("Slice", [g.const("position", array(parts.position)), g.const("start", np.array([0], np.int64)),
                               pieces, g.const("axis", np.array([0], np.int64))])  # (pieces, hidden)
    summed = g.op("Add", [g.op("Add", ["hidden", g.const("token_type", array(parts.token_type))]), positions])
    out = g.op("LayerNormalization", [summed, g.const("norm_g", array(parts.norm.weight)),
                                      g.const("norm_b", array(parts.norm.bias))], axis=-1, epsilon=float(parts.norm.eps))
    if parts.casing is not None:
        out = g.op("Add", [out, g.op("Gather", [g.const("casing", array(parts.casing)), "casing_ids"])])
    return out


def _last_axis(g: GraphBuilder) -> str:
    return g.const("last", np.array([-1], np.int64))


def _axis(g: GraphBuilder, axis: int) -> str:
    return g.const("axis", np.array([axis], np.int64))


def _attention_weights(parts: LayerParts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query weight, query bias) scaled by 1/sqrt(head_dim), and (key|value weight, bias)."""
    scale = 1.0 / math.sqrt(parts.query.in_features // parts.num_heads)
    wq, bq = _weights(parts.query)
    wk, bk = _weights(parts.key)
    wv, bv = _weights(parts.value)
    return wq * scale, bq * scale, np.concatenate([wk, wv], 1), np.concatenate([bk, bv])


def _attend(g: GraphBuilder, parts: LayerParts, queries: str, keys: str, values: str, biases: np.ndarray) -> str:
    """Multi-head attention: queries (batch, q, hidden) over keys, values (batch, pieces, hidden)
    with key_mask -> (batch, q, hidden); the queries come scaled; `biases` (query | key |
    value, the query's scaled) are added inside the attention, not by three more operations."""
    return g.op("MultiHeadAttention", [queries, keys, values, g.const("qkv_b", biases.astype(np.float32)), "key_mask"],
                domain="com.microsoft", num_heads=parts.num_heads, scale=1.0)


def _full_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, in_int8: dict[str, bool],
                every_piece: str | None) -> str:
    """One layer on every piece: (batch, pieces, hidden) -> the same; queries, keys and values
    in one product when they share a precision."""
    size = parts.query.in_features
    shape = g.op("Shape", [hidden])
    rows = g.op("Reshape", [hidden, g.const("rows", np.array([-1, size], np.int64))])  # (batch * pieces, hidden)
    wq, bq, wkv, bkv = _attention_weights(parts)
    zero = every_piece  # every product runs on every piece's row
    if in_int8["query"] == in_int8["key_value"]:
        qkv = _projection(g, rows, np.concatenate([wq, wkv], 1), None, in_int8["query"], "qkv", zero)
        q, k, v = g.ops("Split", [qkv, g.const("thirds", np.array([size] * 3, np.int64))], 3, axis=-1)
    else:
        q = _projection(g, rows, wq, None, in_int8["query"], "query", zero)
        kv = _projection(g, rows, wkv, None, in_int8["key_value"], "key_value", zero)
        k, v = g.ops("Split", [kv, g.const("halves", np.array([size] * 2, np.int64))], 2, axis=-1)
    context = _attend(g, parts, *(g.op("Reshape", [t, shape]) for t in (q, k, v)), np.concatenate([bq, bkv]))
    context = g.op("Reshape", [context, g.const("rows", np.array([-1, size], np.int64))])
    out = output_and_feed_forward(g, parts, activation, context, rows, in_int8, zero)
    return g.op("Reshape", [out, shape])


def _piece_owner(g: GraphBuilder) -> str:
    """(batch, pieces) int64: the word of each piece, `words` (one past the last word) for
    [CLS], [SEP] and padding (`seqexit.pieces.piece_words`, with that marker for -1)."""
    from onnx import TensorProto

    shape = g.op("Shape", ["key_mask"])
    zeros = g.op("ConstantOfShape", [shape], value=_int64_tensor(0))
    marks = g.op("ScatterElements", [zeros, "word_starts", g.op("Cast", ["word_mask"], to=TensorProto.INT64)],
                 axis=1, reduction="add")  # 1 at each word's first piece (padding words add 0 at [CLS])
    index = g.op("Sub", [g.op("CumSum", [marks, g.const("axis", np.array(1, np.int64))]),
                         g.const("one", np.array(1, np.int64))])  # (batch, pieces): -1 at [CLS]
    mask = g.op("Cast", ["key_mask"], to=TensorProto.INT64)
    positions = g.op("Sub", [g.op("CumSum", [g.op("ConstantOfShape", [shape], value=_int64_tensor(1)),
                                             g.const("axis", np.array(1, np.int64))]), g.const("one", np.array(1, np.int64))])
    separator = g.op("Sub", [g.op("ReduceSum", [mask, _axis(g, 1)], keepdims=1), g.const("one", np.array(1, np.int64))])
    no_word = g.op("Or", [g.op("Less", [index, g.const("zero", np.array(0, np.int64))]),
                          g.op("GreaterOrEqual", [positions, separator])])
    words = g.op("Slice", [g.op("Shape", ["word_mask"]), g.const("start", np.array([1], np.int64)),
                           g.const("end", np.array([2], np.int64))])
    return g.op("Where", [no_word, words, index])


def _int64_tensor(value: int):
    from onnx import TensorProto, helper

    return helper.make_tensor("value", TensorProto.INT64, [1], [value])


def _queries(g: GraphBuilder, exit_layer: str, owner: str) -> str:
    """(batch,) int64: per row, the layers each real piece ran as a query, summed: a word's
    pieces run to its exit layer, [CLS] and [SEP] as long as the row runs."""
    from onnx import TensorProto

    deepest = g.op("ReduceMax", [exit_layer, _axis(g, 1)], keepdims=1)  # (batch, 1)
    by_word = g.op("Concat", [exit_layer, deepest], axis=1)  # the last column: pieces of no word
    piece_exit = g.op("Mul", [g.op("GatherElements", [by_word, owner], axis=1),
                              g.op("Cast", ["key_mask"], to=TensorProto.INT64)])  # (batch, pieces)
    return g.op("ReduceSum", [piece_exit, _axis(g, 1)], keepdims=0)


def _running_pieces(g: GraphBuilder, active: str, owner: str) -> str:
    """(batch, pieces) bool: the pieces of running words, and [CLS]/[SEP] of rows with one."""
    from onnx import TensorProto

    row_runs = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [active], to=TensorProto.INT32), _axis(g, 1)], keepdims=1)],
                    to=TensorProto.BOOL)  # (batch, 1)
    by_word = g.op("Concat", [active, row_runs], axis=1)  # (batch, words + 1): the last column is "the row runs"
    return g.op("And", [g.op("GatherElements", [by_word, owner], axis=1), "key_mask_bool"])


def _active_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, running: str,
                  in_int8: dict[str, bool], every_piece: str | None) -> str:
    """One layer on the `running` pieces (batch, pieces) bool only, the rest copied: queries,
    attention output and feed-forward on those M pieces packed across the batch; keys and
    values from every piece (int8 zero points `every_piece`). Skipped (an `If`) when no piece
    runs."""
    from onnx import TensorProto, helper

    any_running = g.op("Greater", [g.op("ReduceMax", [g.op("Cast", [running], to=TensorProto.INT32)], keepdims=0),
                                   g.const("zero", np.array(0, np.int32))])
    b = g.branch()
    size = parts.query.in_features
    flags = b.op("Cast", [running], to=TensorProto.INT64)
    index = b.op("Transpose", [b.op("NonZero", [running])], perm=[1, 0])  # (M, 2): (row, piece), row-major
    packed = b.op("GatherND", [hidden, index])  # (M, hidden)
    slots = b.op("Sub", [b.op("CumSum", [flags, b.const("axis", np.array(1, np.int64))]),
                         b.const("one", np.array(1, np.int64))])  # (batch, pieces): rank among the row's running pieces
    row_of = b.op("Gather", [index, b.const("first", np.array([0], np.int64))], axis=1)  # (M, 1)
    slot_of = b.op("Unsqueeze", [b.op("GatherND", [slots, index]), _axis(b, 1)])  # (M, 1)
    places = b.op("Concat", [row_of, slot_of], axis=1)  # (M, 2): (row, slot) in the padded queries
    width = b.op("ReduceMax", [b.op("ReduceSum", [flags, _axis(b, 1)], keepdims=0)], keepdims=1)  # (1,)
    shape = b.op("Shape", [hidden])
    batch = b.op("Slice", [shape, b.const("start", np.array([0], np.int64)), b.const("end", np.array([1], np.int64))])
    wq, bq, wkv, bkv = _attention_weights(parts)
    zero = row_zero_points(b, packed) if any(in_int8.values()) else None  # queries and feed-forward: M rows
    q = _projection(b, packed, wq, None, in_int8["query"], "query", zero)  # (M, hidden), bias added in the attention
    padded_shape = b.op("Concat", [batch, width, b.const("size", np.array([size], np.int64))], axis=0)
    zeros = b.op("ConstantOfShape", [padded_shape], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    queries = b.op("ScatterND", [zeros, places, q])  # (batch, width, hidden)
    kv = _projection(b, b.op("Reshape", [hidden, b.const("rows", np.array([-1, size], np.int64))]), wkv, None,
                     in_int8["key_value"], "key_value", every_piece)  # (batch * pieces, 2 * hidden)
    k, v = b.ops("Split", [kv, b.const("halves", np.array([size] * 2, np.int64))], 2, axis=-1)
    context = _attend(b, parts, queries, b.op("Reshape", [k, shape]), b.op("Reshape", [v, shape]), np.concatenate([bq, bkv]))
    out = output_and_feed_forward(b, parts, activation, b.op("GatherND", [context, places]), packed, in_int8, zero)
    updated = b.op("ScatterND", [hidden, index, out])  # (batch, pieces, hidden)
    then_branch = helper.make_graph(b.nodes, g.name("run"), [], [helper.make_tensor_value_info(updated, TensorProto.FLOAT, None)])
    kept = g.name("kept")
    else_branch = helper.make_graph([helper.make_node("Identity", [hidden], [kept])], g.name("skip"), [],
                                    [helper.make_tensor_value_info(kept, TensorProto.FLOAT, None)])
    return g.op("If", [any_running], then_branch=then_branch, else_branch=else_branch)


def _exit_logits(g: GraphBuilder, head, hidden: str, starts: str) -> str:
    """An exit head at word starts: (batch, pieces, hidden) -> (batch, words, labels), in float."""
    features = g.op("GatherND", [hidden, starts], batch_dims=1)  # (batch, words, hidden)
    weight, bias = _weights(head.linear)
    return g.op("Add", [g.op("MatMul", [features, g.const("exit_w", weight)]), g.const("exit_b", bias)])


def _doubt(g: GraphBuilder, criterion: str, logits: str, index: int, labels: int) -> str:
    """(batch, words, labels) -> (batch, words) doubt in [0, 1] (`seqexit.exits.criteria`)."""
    if criterion == "confidence":
        temperature = g.op("Gather", ["temperatures", g.const("layer", np.array(index, np.int64))])
        top = g.op("ReduceMax", [g.op("Softmax", [g.op("Div", [logits, temperature])], axis=-1), _last_axis(g)], keepdims=0)
        return g.op("Sub", [g.const("one", np.array(1.0, np.float32)), top])
    log_p = g.op("LogSoftmax", [logits], axis=-1)
    p = g.op("Exp", [log_p])
    zero = g.const("zero", np.array(0.0, np.float32))
    terms = g.op("Where", [g.op("Greater", [p, zero]), g.op("Mul", [p, log_p]), zero])  # 0 log 0 = 0
    negative = g.op("ReduceSum", [terms, _last_axis(g)], keepdims=0)  # -entropy
    normalised = g.op("Div", [negative, g.const("minus_log_labels", np.array(-math.log(labels), np.float32))])
    return g.op("Clip", [normalised, zero, g.const("one", np.array(1.0, np.float32))])


def _window_max(g: GraphBuilder, doubts: str, window: int) -> str:
    """Max doubt over words i-k..i+k of the same row (padding never widens it), 0 on padding:
    `seqexit.exits.uncertainty.window_uncertainty`."""
    zero = g.const("zero", np.array(0.0, np.float32))
    if window == 0:
        return g.op("Where", ["word_mask", doubts, zero])
    lowest = g.const("lowest", np.array(-np.inf, np.float32))
    masked = g.op("Unsqueeze", [g.op("Where", ["word_mask", doubts, lowest]), _axis(g, 1)])  # (batch, 1, words)
    pooled = g.op("MaxPool", [masked], kernel_shape=[2 * window + 1], pads=[window, window], strides=[1])
    return g.op("Where", ["word_mask", g.op("Squeeze", [pooled, _axis(g, 1)]), zero])
