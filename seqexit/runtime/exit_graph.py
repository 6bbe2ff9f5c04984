"""A batch's whole early-exit loop as one ONNX graph: every layer, every exit, the doubt, its
window and the halting, so that ONNX Runtime runs a batch (or one sentence) in a single call
instead of one call per layer with torch deciding in between.

Modes: "fixed" (full depth or a static exit: `depth` layers, one exit read; the last layer runs
its queries and feed-forward at word starts only, all that exit reads) and "tokee" /
"sentee" under every exit criterion (`criteria_graph`; "learned" and "signals" with their
trained heads in the graph), with the engine's semantics (`seqexit.exits.halting`): a halted
word keeps its logits and doubt, its pieces stay keys and values with frozen states, and later
layers run queries, attention output and feed-forward only on the running pieces, packed
across the batch (once none is left, nothing more runs). Exits may read their neighbours'
states (context exits, `ExitHead.shape.context`); exits that read the past, the future or a
hidden layer run layer by layer (`onnx_layers`).

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

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ..encoders.base import EmbeddingParts, LayerParts
from .criteria_graph import FUSED_CRITERIA, TRAINED_CRITERIA, criterion_doubt
from .onnx_graph import (
    OPSET, PROJECTIONS, GraphBuilder, _projection, _weights, attend, attention_weights, axis, check_activation,
    int8_projections, last_axis, output_and_feed_forward, queried_layer, row_zero_points, word_neighbours,
    zero_points,
)

@dataclass(frozen=True)
class ExitGraphSpec:
    """What one exit graph computes; everything else (thresholds, temperatures) is an input."""

    mode: str  # "fixed", "tokee" or "sentee"
    depth: int  # layers run: the static exit's layer, or every layer
    window: int = 0  # half-width of the doubt window (dynamic modes)
    criterion: str = "entropy"
    patience: int | None = None  # "patience" and "rising": the exits in a row that halt a word
    # dynamic modes: the graph takes batches of one sentence only (batch 1, the web-request case)
    # and leaves out what packs running pieces across rows, about a fifth of each layer's operations
    single_row: bool = False

    @property
    def dynamic(self) -> bool:
        return self.mode != "fixed"

    @property
    def reads_heads(self) -> bool:
        """Whether the graph needs the criterion's trained heads."""
        return self.dynamic and self.criterion in TRAINED_CRITERIA


def spec_for(policy, num_layers: int) -> ExitGraphSpec | None:
    """The graph that runs `policy` (an `ExitPolicy`) in one call, or None where the graphs do
    not carry its criterion."""
    if policy.mode in ("full", "static"):
        return ExitGraphSpec("fixed", policy.exit_depth(num_layers))
    if policy.criterion not in FUSED_CRITERIA:
        return None
    patience = policy.patience if policy.criterion in ("patience", "rising") else None
    return ExitGraphSpec(policy.mode, num_layers, policy.window, policy.criterion, patience)


def exit_graph(layers: Sequence[LayerParts], exits: Sequence, spec: ExitGraphSpec, activation: str, *,
               int8: bool = False, keep_float: Collection[str] = (), embedding: EmbeddingParts | None = None,
               heads=None):
    """The ONNX model (`onnx.ModelProto`) of `spec` over float `layers` and exit heads `exits`
    (`ExitHead`s: plain or context exits). int8: projections int8 as in `onnx_graph.layer_graph`,
    except those named in `keep_float` ("query", or "L2.query" for one layer); the exits and
    heads stay float. embedding: the graph finishes the embeddings from word vectors (see the
    module doc). heads: the criterion's trained heads where `spec.reads_heads`
    (`LearnedExitHeads` or `HaltingSignals`)."""
    from onnx import TensorProto, helper

    check_activation(activation)
    if spec.reads_heads and heads is None:
        raise ValueError(f"the {spec.criterion!r} criterion's graph needs its trained heads")
    g = GraphBuilder()
    g.nodes.append(helper.make_node("Cast", ["key_mask"], ["key_mask_bool"], to=TensorProto.BOOL))
    hidden = "hidden" if embedding is None else _embeddings(g, embedding)
    starts = g.op("Unsqueeze", ["word_starts", last_axis(g)])  # (batch, words, 1)
    if spec.criterion == "signals" or any(head.shape.context for head in exits[:spec.depth]):
        # made once for every layer: (batch, words, 1) 1.0 at words, 0.0 at padding
        g.nodes.append(helper.make_node("Unsqueeze", [g.op("Cast", ["word_mask"], to=TensorProto.FLOAT), last_axis(g)],
                                        ["word_present"]))
    precisions = [int8_projections(int8, {name for name in PROJECTIONS if name in keep_float
                                          or f"L{index + 1}.{name}" in keep_float}) for index in range(spec.depth)]
    # the int8 zero points of every piece's row, shared by all products over every piece
    every_piece = zero_points(g, g.op("ReduceProd", [g.op("Shape", ["key_mask"])], keepdims=1)) if int8 else None
    if spec.dynamic:
        owner = _piece_owner(g)
        logits, exit_layer = _halting_loop(g, layers, exits, spec, activation, hidden, starts, owner, precisions,
                                           every_piece, heads)
        g.nodes.append(helper.make_node("Identity", [exit_layer], ["exit_layer"]))
        g.nodes.append(helper.make_node("Identity", [_queries(g, exit_layer, owner)], ["queries"]))
    else:
        for index in range(spec.depth - 1):
            hidden = _full_layer(g, layers[index], activation, hidden, precisions[index], every_piece)
        words = _word_start_layer(g, layers[spec.depth - 1], activation, hidden, starts, precisions[spec.depth - 1],
                                  every_piece)
        logits = _exit_on_words(g, exits[spec.depth - 1], words)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    inputs, outputs = _signature(spec, layers[0].query.in_features, exits[0].linear.out_features,
                                 embedding is not None and embedding.casing is not None)
    graph = helper.make_graph(g.nodes, "seqexit_exits", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="seqexit")


def _halting_loop(g: GraphBuilder, layers, exits, spec: ExitGraphSpec, activation: str, hidden: str, starts: str,
                  owner: str, precisions: list[dict[str, bool]], every_piece: str | None, heads) -> tuple[str, str]:
    """TOKEE/SENTEE over every layer from the embeddings `hidden`: (logits at each word's exit,
    exit layers) as graph values. every_piece: int8 zero points of every piece's row.

    Layer 1 runs every piece; each later layer, with its exit and criterion, sits in an `If`
    nested in the one before that runs only while some word still does, so a batch (a sentence,
    at batch 1) whose words have all halted costs nothing more."""
    from onnx import TensorProto

    loop = _Loop(layers, exits, spec, activation, starts, owner, precisions, heads, every_piece)
    hidden = _full_layer(g, layers[0], activation, hidden, precisions[0], every_piece)  # every word runs layer 1
    step, doubt, below = loop.read(g, 0, hidden, None)
    exit_layer = g.op("Cast", ["word_mask"], to=TensorProto.INT64)
    if spec.depth == 1:
        return step, exit_layer
    return loop.next_layers(g, 1, hidden, loop.halt(g, 0, "word_mask", doubt), step, doubt, exit_layer, below)


@dataclass
class _Loop:
    """What every step of `_halting_loop` reads; its methods add one step's operations to a
    builder (the main graph or an `If` branch)."""

    layers: Sequence[LayerParts]
    exits: Sequence
    spec: ExitGraphSpec
    activation: str
    starts: str
    owner: str
    precisions: list[dict[str, bool]]
    heads: object
    every_piece: str | None  # int8 zero points of every piece's row (the single-row graph's keys and values)

    def read(self, g: GraphBuilder, index: int, hidden: str,
             below: dict[str, str] | None) -> tuple[str, str | None, dict[str, str] | None]:
        """Exit `index` on every word: (logits (batch, words, labels), doubt (batch, words), None
        at the last exit, which ends every word; what the criterion carries to the exit above)."""
        step, words = _exit_logits(g, self.exits[index], hidden, self.starts)  # (batch, words, labels), (batch, words, hidden)
        spec = self.spec
        if index == spec.depth - 1:
            return step, None, below
        doubt, below = criterion_doubt(g, spec.criterion, step, words, below, index, spec.depth,
                                       self.exits[0].linear.out_features, self.heads, spec.patience)
        return step, doubt, below

    def halt(self, g: GraphBuilder, index: int, active: str, doubts: str) -> str:
        """The words still running after layer `index`: (batch, words) bool."""
        from onnx import TensorProto

        bound = g.op("Gather", ["bounds", g.const("layer", np.array(index, np.int64))])
        certain = g.op("Less", [_window_max(g, doubts, self.spec.window), bound])  # (batch, words)
        if self.spec.mode == "sentee":  # a sentence halts when all its words are certain
            every = g.op("Cast", [g.op("Or", [certain, g.op("Not", ["word_mask"])])], to=TensorProto.INT32)
            certain = g.op("Cast", [g.op("ReduceMin", [every, axis(g, 1)], keepdims=1)], to=TensorProto.BOOL)  # (batch, 1)
        return g.op("And", [active, g.op("Not", [certain])])

    def next_layers(self, g: GraphBuilder, index: int, hidden: str, active: str, logits: str, doubts: str,
                    exit_layer: str, below: dict[str, str] | None) -> tuple[str, str]:
        """Layers `index`.. in an `If` that runs them while a word of `active` runs, else passes
        (logits, exit_layer) on: (logits, exit layers) after the last layer."""
        from onnx import TensorProto, helper

        runs = g.op("Greater", [g.op("ReduceMax", [g.op("Cast", [active], to=TensorProto.INT32)], keepdims=0),
                                g.const("zero", np.array(0, np.int32))])
        b = g.branch()
        running = _running_pieces(b, active, self.owner, self.spec.single_row)
        if self.spec.single_row:
            hidden = _single_row_layer(b, self.layers[index], self.activation, hidden, running, self.precisions[index],
                                       self.every_piece)
        else:
            hidden = _active_layer(b, self.layers[index], self.activation, hidden, running, self.precisions[index])
        step, doubt, below = self.read(b, index, hidden, below)
        # a halted word keeps what it had when it halted
        logits_out = b.op("Where", [b.op("Unsqueeze", [active, last_axis(b)]), step, logits])
        exit_out = b.op("Add", [exit_layer, b.op("Cast", [active], to=TensorProto.INT64)])
        if index < self.spec.depth - 1:
            doubts = b.op("Where", [active, doubt, doubts])
            logits_out, exit_out = self.next_layers(b, index + 1, hidden, self.halt(b, index, active, doubts),
                                                    logits_out, doubts, exit_out, below)
        then_branch = helper.make_graph(b.nodes, g.name("run"), [], [
            helper.make_tensor_value_info(logits_out, TensorProto.FLOAT, None),
            helper.make_tensor_value_info(exit_out, TensorProto.INT64, None)])
        kept_logits, kept_exit = g.name("kept"), g.name("kept")
        else_branch = helper.make_graph([helper.make_node("Identity", [logits], [kept_logits]),
                                         helper.make_node("Identity", [exit_layer], [kept_exit])], g.name("done"), [], [
            helper.make_tensor_value_info(kept_logits, TensorProto.FLOAT, None),
            helper.make_tensor_value_info(kept_exit, TensorProto.INT64, None)])
        out_logits, out_exit = g.ops("If", [runs], 2, then_branch=then_branch, else_branch=else_branch)
        return out_logits, out_exit


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


def _full_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, in_int8: dict[str, bool],
                every_piece: str | None) -> str:
    """One layer on every piece: (batch, pieces, hidden) -> the same; queries, keys and values
    in one product when they share a precision."""
    size = parts.query.in_features
    shape = g.op("Shape", [hidden])
    rows = g.op("Reshape", [hidden, g.const("rows", np.array([-1, size], np.int64))])  # (batch * pieces, hidden)
    wq, bq, wkv = attention_weights(parts)
    zero = every_piece  # every product runs on every piece's row
    if in_int8["query"] == in_int8["key_value"]:
        qkv = _projection(g, rows, np.concatenate([wq, wkv], 1), None, in_int8["query"], "qkv", zero)
        q, k, v = g.ops("Split", [qkv, g.const("thirds", np.array([size] * 3, np.int64))], 3, axis=-1)
        q = g.op("Add", [q, g.const("query_b", bq.astype(np.float32))])
    else:
        q = _projection(g, rows, wq, bq, in_int8["query"], "query", zero)
        kv = _projection(g, rows, wkv, None, in_int8["key_value"], "key_value", zero)
        k, v = g.ops("Split", [kv, g.const("halves", np.array([size] * 2, np.int64))], 2, axis=-1)
    context = attend(g, parts, *(g.op("Reshape", [t, shape]) for t in (q, k, v)))
    context = g.op("Reshape", [context, g.const("rows", np.array([-1, size], np.int64))])
    out = output_and_feed_forward(g, parts, activation, context, rows, in_int8, zero)
    return g.op("Reshape", [out, shape])


def _word_start_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, starts: str,
                      in_int8: dict[str, bool], every_piece: str | None) -> str:
    """The layer a fixed-depth graph's exit reads: (batch, pieces, hidden) -> the words' states
    (batch, words, hidden), what `_full_layer` gives at each word's first piece. Only those
    pieces are queries (nothing reads the others' states after it); keys and values come from
    every piece (every_piece: their int8 zero points)."""
    words = g.op("GatherND", [hidden, starts], batch_dims=1)  # (batch, words, hidden)
    return queried_layer(g, parts, activation, hidden, words, in_int8, every_piece)


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
    separator = g.op("Sub", [g.op("ReduceSum", [mask, axis(g, 1)], keepdims=1), g.const("one", np.array(1, np.int64))])
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

    deepest = g.op("ReduceMax", [exit_layer, axis(g, 1)], keepdims=1)  # (batch, 1)
    by_word = g.op("Concat", [exit_layer, deepest], axis=1)  # the last column: pieces of no word
    piece_exit = g.op("Mul", [g.op("GatherElements", [by_word, owner], axis=1),
                              g.op("Cast", ["key_mask"], to=TensorProto.INT64)])  # (batch, pieces)
    return g.op("ReduceSum", [piece_exit, axis(g, 1)], keepdims=0)


def _running_pieces(g: GraphBuilder, active: str, owner: str, single_row: bool = False) -> str:
    """(batch, pieces) bool: the pieces of running words, and [CLS]/[SEP] of rows with one
    (single_row: the one row, which runs, or the caller would not be here)."""
    from onnx import TensorProto

    if single_row:
        row_runs = g.const("runs", np.ones((1, 1), bool))
    else:
        row_runs = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [active], to=TensorProto.INT32), axis(g, 1)], keepdims=1)],
                        to=TensorProto.BOOL)  # (batch, 1)
    by_word = g.op("Concat", [active, row_runs], axis=1)  # (batch, words + 1): the last column is "the row runs"
    return g.op("And", [g.op("GatherElements", [by_word, owner], axis=1), "key_mask_bool"])


def _active_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, running: str,
                  in_int8: dict[str, bool]) -> str:
    """One layer on the `running` pieces (batch, pieces) bool only, the rest copied: queries,
    attention output and feed-forward on those M pieces packed across the batch; keys and
    values from every piece of the R rows that still run (halted pieces with their frozen
    states; a row with nothing running is left out, as the torch engine drops it). The caller
    runs it only where some piece runs (`_Loop.next_layers`)."""
    from onnx import TensorProto, helper

    size = parts.query.in_features
    flags = g.op("Cast", [running], to=TensorProto.INT64)
    row_runs = g.op("ReduceMax", [flags, axis(g, 1)], keepdims=0)  # (batch,) 1 where a piece of the row runs
    rows = g.op("Squeeze", [g.op("NonZero", [row_runs]), g.const("axis", np.array([0], np.int64))])  # (R,)
    row_rank = g.op("Sub", [g.op("CumSum", [row_runs, g.const("axis", np.array(0, np.int64))]),
                            g.const("one", np.array(1, np.int64))])  # (batch,): each running row's place among the R
    index = g.op("Transpose", [g.op("NonZero", [running])], perm=[1, 0])  # (M, 2): (row, piece), row-major
    packed = g.op("GatherND", [hidden, index])  # (M, hidden)
    slots = g.op("Sub", [g.op("CumSum", [flags, g.const("axis", np.array(1, np.int64))]),
                         g.const("one", np.array(1, np.int64))])  # (batch, pieces): rank among the row's running pieces
    row_of = g.op("Gather", [row_rank, g.op("Gather", [index, g.const("first", np.array([0], np.int64))], axis=1)])  # (M, 1)
    slot_of = g.op("Unsqueeze", [g.op("GatherND", [slots, index]), axis(g, 1)])  # (M, 1)
    places = g.op("Concat", [row_of, slot_of], axis=1)  # (M, 2): (running row, slot) in the padded queries
    width = g.op("ReduceMax", [g.op("ReduceSum", [flags, axis(g, 1)], keepdims=0)], keepdims=1)  # (1,)
    states = g.op("Gather", [hidden, rows], axis=0)  # (R, pieces, hidden)
    shape = g.op("Shape", [states])
    n_rows = g.op("Shape", [rows])  # (1,): R
    wq, bq, wkv = attention_weights(parts)
    zero = row_zero_points(g, packed) if any(in_int8.values()) else None  # queries and feed-forward: M rows
    q = _projection(g, packed, wq, bq, in_int8["query"], "query", zero)  # (M, hidden)
    padded_shape = g.op("Concat", [n_rows, width, g.const("size", np.array([size], np.int64))], axis=0)
    zeros = g.op("ConstantOfShape", [padded_shape], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    queries = g.op("ScatterND", [zeros, places, q])  # (R, width, hidden)
    flat = g.op("Reshape", [states, g.const("rows", np.array([-1, size], np.int64))])  # (R * pieces, hidden)
    kv = _projection(g, flat, wkv, None, in_int8["key_value"], "key_value")  # (R * pieces, 2 * hidden)
    k, v = g.ops("Split", [kv, g.const("halves", np.array([size] * 2, np.int64))], 2, axis=-1)
    context = attend(g, parts, queries, g.op("Reshape", [k, shape]), g.op("Reshape", [v, shape]),
                     g.op("Gather", ["key_mask", rows], axis=0))  # (R, width, hidden)
    out = output_and_feed_forward(g, parts, activation, g.op("GatherND", [context, places]), packed, in_int8, zero)
    return g.op("ScatterND", [hidden, index, out])  # (batch, pieces, hidden)


def _single_row_layer(g: GraphBuilder, parts: LayerParts, activation: str, hidden: str, running: str,
                      in_int8: dict[str, bool], every_piece: str | None) -> str:
    """`_active_layer` for a batch of one sentence, whose row runs: queries, attention output
    and feed-forward on its M running pieces, keys and values from all its pieces (every_piece:
    their int8 zero points), with nothing to pack across rows."""
    size = parts.query.in_features
    index = g.op("Transpose", [g.op("NonZero", [running])], perm=[1, 0])  # (M, 2): (0, piece)
    packed = g.op("GatherND", [hidden, index])  # (M, hidden)
    wq, bq, wkv = attention_weights(parts)
    zero = row_zero_points(g, packed) if any(in_int8.values()) else None  # queries and feed-forward: M rows
    q = _projection(g, packed, wq, bq, in_int8["query"], "query", zero)  # (M, hidden)
    flat = g.op("Reshape", [hidden, g.const("rows", np.array([-1, size], np.int64))])  # (pieces, hidden)
    kv = _projection(g, flat, wkv, None, in_int8["key_value"], "key_value", every_piece)
    k, v = g.ops("Split", [kv, g.const("halves", np.array([size] * 2, np.int64))], 2, axis=-1)
    shape = g.op("Shape", [hidden])
    context = attend(g, parts, g.op("Unsqueeze", [q, axis(g, 0)]), g.op("Reshape", [k, shape]),
                     g.op("Reshape", [v, shape]))  # (1, M, hidden)
    rows = g.op("Reshape", [context, g.const("rows", np.array([-1, size], np.int64))])  # (M, hidden)
    out = output_and_feed_forward(g, parts, activation, rows, packed, in_int8, zero)
    return g.op("ScatterND", [hidden, index, out])  # (1, pieces, hidden)


def _exit_logits(g: GraphBuilder, head, hidden: str, starts: str) -> tuple[str, str]:
    """An exit head (plain or with context) at word starts: (batch, pieces, hidden) ->
    (logits (batch, words, labels), the words' states (batch, words, hidden)), in float. A
    context exit reads words i-k..i+k, padding and the ends as zeros (`ExitHead.features`): its
    linear layer is a sum of one product per neighbour, so each word's state goes through all
    2k+1 of them at once and the (small) products are shifted along the sentence, not the states."""
    words = g.op("GatherND", [hidden, starts], batch_dims=1)  # (batch, words, hidden)
    return _exit_on_words(g, head, words), words


def _exit_on_words(g: GraphBuilder, head, words: str) -> str:
    """`_exit_logits` on the words' states (batch, words, hidden): (batch, words, labels)."""
    weight, bias = _weights(head.linear)  # ((2k + 1) * hidden, labels)
    k, labels = head.shape.context, weight.shape[1]
    if not k:
        return g.op("Add", [g.op("MatMul", [words, g.const("exit_w", weight)]), g.const("exit_b", bias)])
    blocks = np.concatenate(np.split(weight, 2 * k + 1, axis=0), axis=1)  # (hidden, (2k + 1) * labels)
    products = g.op("Mul", [g.op("MatMul", [words, g.const("exit_w", blocks)]), "word_present"])  # 0 at padding
    columns = [(j * labels, (j + 1) * labels) for j in range(2 * k + 1)]
    shifted = word_neighbours(g, products, range(-k, k + 1), rank=3, columns=columns)  # each (batch, words, labels)
    return g.op("Add", [functools.reduce(lambda a, b: g.op("Add", [a, b]), shifted), g.const("exit_b", bias)])


def _window_max(g: GraphBuilder, doubts: str, window: int) -> str:
    """Max doubt over words i-k..i+k of the same row (padding never widens it), 0 on padding:
    `seqexit.exits.uncertainty.window_uncertainty`."""
    zero = g.const("zero", np.array(0.0, np.float32))
    if window == 0:
        return g.op("Where", ["word_mask", doubts, zero])
    lowest = g.const("lowest", np.array(-np.inf, np.float32))
    masked = g.op("Unsqueeze", [g.op("Where", ["word_mask", doubts, lowest]), axis(g, 1)])  # (batch, 1, words)
    pooled = g.op("MaxPool", [masked], kernel_shape=[2 * window + 1], pads=[window, window], strides=[1])
    return g.op("Where", ["word_mask", g.op("Squeeze", [pooled, axis(g, 1)]), zero])
