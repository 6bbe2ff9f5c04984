"""The exit criteria (`seqexit.exits.criteria`) as ONNX operations, for the exit graphs.

Each turns one exit's logits (batch, words, labels) into the per-word doubt (batch, words) that
the graph's window and halting read, with what the criterion carries to the exit above (the
torch engine's `CriterionState`). A halted word never runs again, so what it carries is never
read: the graph passes every word's on as computed, and keeps only a halted word's doubt (the
caller's `Where`), where the torch engine keeps all of it; the labels and exit layers are the same.
"""

from __future__ import annotations

import math

import numpy as np

from .onnx_graph import GraphBuilder, _weights, last_axis, word_neighbours

FUSED_CRITERIA = ("entropy", "confidence", "patience", "rising", "vote", "learned", "signals")  # all of them
TRAINED_CRITERIA = ("learned", "signals")  # the criteria that read the model's trained heads


def criterion_doubt(g: GraphBuilder, criterion: str, logits: str, words: str, below: dict[str, str] | None,
                    index: int, num_layers: int, labels: int, heads=None,
                    patience: int | None = None) -> tuple[str, dict[str, str]]:
    """Exit `index` (0-based, below the last)'s doubt under `criterion`: logits (batch, words,
    `labels`), words (batch, words, hidden) the states it read, `below` what the criterion
    carried from the exit below (None at the first); `heads`: the trained heads of "learned" and
    "signals"; `patience`: that of "patience" and "rising". Returns (doubt, what it carries to
    the exit above)."""
    if criterion == "signals":
        return _signals(g, heads, logits, below, index)
    if criterion == "learned":
        return _learned(g, heads.heads[index], words), {}
    if criterion == "confidence":
        return _confidence(g, logits, index), {}
    if criterion == "entropy":
        return _entropy(g, logits, labels), {}
    return _counting(g, criterion, logits, below, index, num_layers, labels, patience)


def _scalar(g: GraphBuilder, stem: str, value: float) -> str:
    return g.const(stem, np.array(value, np.float32))


def _entropy(g: GraphBuilder, logits: str, labels: int) -> str:
    """Normalised entropy, 0 log 0 = 0, clipped to [0, 1]."""
    log_p = g.op("LogSoftmax", [logits], axis=-1)
    p = g.op("Exp", [log_p])
    zero = _scalar(g, "zero", 0.0)
    terms = g.op("Where", [g.op("Greater", [p, zero]), g.op("Mul", [p, log_p]), zero])
    negative = g.op("ReduceSum", [terms, last_axis(g)], keepdims=0)  # -entropy
    normalised = g.op("Div", [negative, _scalar(g, "minus_log_labels", -math.log(labels))])
    return g.op("Clip", [normalised, zero, _scalar(g, "one", 1.0)])


def _confidence(g: GraphBuilder, logits: str, index: int) -> str:
    """1 - top probability after exit `index`'s temperature (the graph input "temperatures")."""
    temperature = g.op("Gather", ["temperatures", g.const("layer", np.array(index, np.int64))])
    top = g.op("ReduceMax", [g.op("Softmax", [g.op("Div", [logits, temperature])], axis=-1), last_axis(g)], keepdims=0)
    return g.op("Sub", [_scalar(g, "one", 1.0), top])


def _learned(g: GraphBuilder, head, words: str) -> str:
    """1 - sigmoid(the layer's linear unit on the word's state)."""
    weight, bias = _weights(head)
    logit = g.op("Add", [g.op("MatMul", [words, g.const("learned_w", weight)]), g.const("learned_b", bias)])
    return g.op("Sub", [_scalar(g, "one", 1.0), g.op("Sigmoid", [g.op("Squeeze", [logit, last_axis(g)])])])


def _counting(g: GraphBuilder, criterion: str, logits: str, below: dict[str, str] | None, index: int,
              num_layers: int, labels: int, patience: int | None) -> tuple[str, dict[str, str]]:
    """patience (the label unchanged for `patience` exits), rising (its probability risen at
    `patience` exits in a row) and vote (depth-weighted votes; doubt 1 - lead / all weights)."""
    from onnx import TensorProto

    probs = g.op("Softmax", [logits], axis=-1)
    label = g.op("ArgMax", [probs], axis=-1, keepdims=0)  # (batch, words), the first of equal ones as torch
    zero = g.const("zero", np.array(0, np.int64))
    if criterion == "vote":
        weight = g.const("weight", np.array(index + 1, np.float32))
        one_hot = g.op("OneHot", [label, g.const("depth", np.array(labels, np.int64)),
                                  g.const("off_on", np.array([0.0, 1.0], np.float32))], axis=-1)
        cast = g.op("Mul", [one_hot, weight])
        votes = cast if below is None else g.op("Add", [below["votes"], cast])  # (batch, words, labels)
        best = g.ops("TopK", [votes, g.const("k", np.array([min(2, labels)], np.int64))], 2, axis=-1)[0]
        first = g.op("Squeeze", [g.op("Gather", [best, g.const("at", np.array([0], np.int64))], axis=-1), last_axis(g)])
        second = (g.op("Squeeze", [g.op("Gather", [best, g.const("at", np.array([1], np.int64))], axis=-1), last_axis(g)])
                  if labels > 1 else _scalar(g, "zero", 0.0))
        lead = g.op("Div", [g.op("Sub", [first, second]), _scalar(g, "total", num_layers * (num_layers + 1) / 2)])
        return g.op("Sub", [_scalar(g, "one", 1.0), lead]), {"votes": votes}
    if criterion == "patience":
        count = (g.op("Mul", [label, zero]) if below is None else
                 g.op("Where", [g.op("Equal", [label, below["label"]]),
                                g.op("Add", [below["count"], g.const("one", np.array(1, np.int64))]), zero]))
        carried = {"label": label, "count": count}
    elif criterion == "rising":
        if below is None:  # the first exit has nothing to rise from
            count = g.op("Mul", [label, zero])
        else:
            at = g.op("Unsqueeze", [label, last_axis(g)])
            now, before = (g.op("Squeeze", [g.op("GatherElements", [p, at], axis=-1), last_axis(g)])
                           for p in (probs, below["probs"]))  # the label's probability now and at the exit below
            count = g.op("Where", [g.op("Greater", [now, before]),
                                   g.op("Add", [below["count"], g.const("one", np.array(1, np.int64))]), zero])
        carried = {"probs": probs, "count": count}
    else:
        raise ValueError(f"no graph for the exit criterion {criterion!r}")
    short = g.op("Less", [count, g.const("patience", np.array(patience, np.int64))])
    return g.op("Cast", [short], to=TensorProto.FLOAT), carried


def _signals(g: GraphBuilder, heads, logits: str, below: dict[str, str] | None,
             index: int) -> tuple[str, dict[str, str]]:
    """The signals of every word (`seqexit.exits.signals.signal_features`), then the layer's
    perceptron: (doubt, this exit's entropy, top, label and streak for the exit above). Every
    signal is kept as a column (batch, words, 1), the shape the features are joined in."""
    from onnx import TensorProto

    from ..exits.signals import num_signals

    labels = heads.num_labels
    one, zero = _scalar(g, "one", 1.0), _scalar(g, "zero", 0.0)
    probs = g.op("Softmax", [logits], axis=-1)
    log_p = g.op("Log", [g.op("Max", [probs, g.const("tiny", np.array(1e-12, np.float32))])])
    entropy = g.op("Div", [g.op("ReduceSum", [g.op("Mul", [probs, log_p]), last_axis(g)], keepdims=1),
                           g.const("minus_log_labels", np.array(-math.log(max(labels, 2)), np.float32))])
    best, picked = g.ops("TopK", [probs, g.const("k", np.array([min(2, labels)], np.int64))], 2, axis=-1)

    def column(value: str, at: int) -> str:  # (batch, words, k) -> entry `at` of the last axis, (batch, words, 1)
        return g.op("Slice", [value, g.const("start", np.array([at], np.int64)),
                              g.const("end", np.array([at + 1], np.int64)), last_axis(g)])

    top, label = column(best, 0), column(picked, 0)  # (batch, words, 1)
    margin = g.op("Sub", [top, column(best, 1)]) if labels > 1 else top
    masked = g.op("Mul", [entropy, "word_present"])  # the graph's (batch, words, 1): 1.0 at words, 0.0 at padding
    one_hot = g.op("Mul", [g.op("Cast", [g.op("Equal", [label, g.const("classes", np.arange(labels, dtype=np.int64))])],
                                to=TensorProto.FLOAT), "word_present"])  # (batch, words, labels)
    if below is None:
        previous = [g.op("Mul", [entropy, zero])] * 3
        streak = g.op("Add", [previous[0], one])
    else:
        same = g.op("Cast", [g.op("Equal", [label, below["label"]])], to=TensorProto.FLOAT)
        previous = [below["entropy"], below["top"], same]
        streak = g.op("Add", [g.op("Mul", [same, below["streak"]]), one])
    left, right = word_neighbours(g, masked, [-1, 1], rank=3)  # the neighbours' entropy
    left_label, = word_neighbours(g, one_hot, [-1], rank=3)  # (batch, words, labels): the word before's label
    features = [entropy, top, margin, one_hot, *previous, left, right, left_label,
                g.op("Sub", [one, g.op("Div", [one, streak])])]
    if heads.width < num_signals(labels):
        features = features[:-1]  # heads fitted before the streak existed read all but the streak
    hidden_layer, _, out_layer = heads.heads[index]
    w1, b1 = _weights(hidden_layer)
    w2, b2 = _weights(out_layer)
    inner = g.op("Relu", [g.op("Add", [g.op("MatMul", [g.op("Concat", features, axis=-1), g.const("signals_w1", w1)]),
                                       g.const("signals_b1", b1)])])
    logit = g.op("Squeeze", [g.op("Add", [g.op("MatMul", [inner, g.const("signals_w2", w2)]), g.const("signals_b2", b2)]),
                             last_axis(g)])
    doubt = g.op("Sub", [one, g.op("Sigmoid", [logit])])
    return doubt, {"entropy": entropy, "top": top, "label": label, "streak": streak}
