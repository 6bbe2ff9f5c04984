"""A batch's whole exit loop on ONNX Runtime in one call: one session per `ExitGraphSpec`
(`exit_graph`), built on first use (or read from the graph cache) and checked against torch.

At batch 1 this is what makes early exit pay: one runtime call per sentence instead of one per
layer with torch's exits and halting in between (six calls and about thirty small torch
operations per sentence); at batch 32 the packing of running pieces happens inside the graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..encoders.base import EmbeddingParts, EncoderAdapter
from .cache import cached_bytes, tensors_digest
from .exit_graph import ExitGraphSpec, spec_for
from .onnx_session import RuntimeMismatch, disagreement, layer_tensors, session_options

EXIT_GRAPH_VERSION = 10  # bump when `exit_graph` changes what it builds: old cache files stop matching


class ExitGraphs:
    """Sessions of exit graphs over one model's float layers and exits, one per spec."""

    def __init__(self, adapter: EncoderAdapter, exits: Sequence, activation: str, quantize: str | None, *,
                 keep_float: Collection[str] = (), cache: Path | None = None, threads: int | None = None) -> None:
        self.adapter, self.exits, self.activation, self.quantize = adapter, exits, activation, quantize
        self.keep_float = frozenset(keep_float)
        self.embedding = adapter.embedding_parts()  # None: the caller passes torch's embeddings
        # read now: sessions are opened on first use, inside runs that hold torch at one thread
        self.cache, self.threads = cache, threads or torch.get_num_threads()
        self.sessions: dict[tuple, object] = {}  # (spec, the criterion's heads or None) -> session
        self._weights_key: str | None = None

    def spec(self, policy) -> ExitGraphSpec | None:
        """`policy`'s graph, or None where it reads an exit that sees more than its own and its
        neighbours' states (past, future or hidden layer: `ExitHead.shape`), which the graphs
        do not build: the layer-by-layer engine runs those."""
        spec = spec_for(policy, self.adapter.num_layers)
        if spec is None:
            return None
        read = [spec.depth - 1] if spec.mode == "fixed" else range(spec.depth)
        return None if any(not _in_graph(self.exits[layer].shape) for layer in read) else spec

    def session(self, spec: ExitGraphSpec, heads=None):
        """The checked session of `spec` (with the criterion's trained `heads` where it reads
        them): built (or read from the cache) once, then kept."""
        heads = heads if spec.reads_heads else None
        if (spec, heads) not in self.sessions:
            import onnxruntime as ort

            from .onnx_graph import weight_levels

            if self._weights_key is None:
                tensors = [t for parts in self.adapter.layers for t in layer_tensors(parts)]
                tensors += [t for head in self.exits for t in head.parameters()]
                tensors += self.embedding.tensors() if self.embedding is not None else []
                self._weights_key = tensors_digest(tensors)
            settings = (EXIT_GRAPH_VERSION, ort.__version__, self.activation, self.quantize, sorted(self.keep_float),
                        spec, self.adapter.layers[0].num_heads, weight_levels(), self.embedding is not None)
            key = "exits-" + tensors_digest(list(heads.parameters()) if heads is not None else (), self._weights_key,
                                            *settings)
            options = session_options(self.threads, spin=True)

            def build() -> bytes:
                from .exit_graph import exit_graph

                return exit_graph(self.adapter.layers, self.exits, spec, self.activation, int8=self.quantize == "int8",
                                  keep_float=self.keep_float, embedding=self.embedding, heads=heads).SerializeToString()

            def accept(data: bytes):
                return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

            session = cached_bytes(self.cache, key, build, accept)
            check_exit_graph(self.adapter, self.exits, spec, session, self.quantize, self.embedding)
            self.sessions[spec, heads] = session
        return self.sessions[spec, heads]

    def run(self, spec: ExitGraphSpec, input_ids: torch.Tensor, casing_ids: torch.Tensor | None, key_mask: torch.Tensor,
            word_starts: torch.Tensor, word_mask: torch.Tensor, bounds: Sequence[float] = (),
            temperatures: Sequence[float] | None = None, heads=None) -> ExitGraphOutput:
        """One batch of piece ids (batch, pieces) [and casing class ids] through the graph of
        `spec`; see `exit_graph` for the other inputs. A batch of one sentence under a dynamic
        mode runs the single-row graph of `spec`."""
        if spec.dynamic and input_ids.shape[0] == 1 and not spec.single_row:
            spec = dataclasses.replace(spec, single_row=True)
        if self.embedding is None:
            hidden, casing = self.adapter.embed(input_ids, casing_ids), None  # (batch, pieces, hidden)
        else:  # the graph does the rest of the embeddings
            hidden, casing = F.embedding(input_ids, self.embedding.word), casing_ids
        if torch.is_grad_enabled() and hidden.requires_grad:
            raise RuntimeError("the ONNX runtime is for inference; train with runtime='torch'")
        return run_exit_graph(self.session(spec, heads), spec, hidden, key_mask, word_starts, word_mask, bounds, temperatures,
                              casing)


def _in_graph(shape) -> bool:
    """Whether an exit of this `ExitShape` has a form in the exit graphs: linear on the word's
    state and its neighbours' (context), nothing else."""
    return not (shape.past or shape.future or shape.hidden)


class ExitGraphOutput(NamedTuple):
    """What an exit graph returns for a batch."""

    logits: torch.Tensor  # (batch, words, labels) at each word's exit
    exit_layer: torch.Tensor | None  # (batch, words), 1-based, 0 on padding; None for "fixed"
    queries: torch.Tensor | None  # (batch,): layers run as a query, summed over pieces; None for "fixed"


def run_exit_graph(session, spec: ExitGraphSpec, hidden: torch.Tensor, key_mask: torch.Tensor,
                   word_starts: torch.Tensor, word_mask: torch.Tensor, bounds: Sequence[float],
                   temperatures: Sequence[float] | None, casing_ids: torch.Tensor | None = None) -> ExitGraphOutput:
    """One call of an exit graph's `session` on `hidden` (word vectors or embeddings, as the
    graph was built; see `exit_graph`)."""
    feed = {"hidden": np.ascontiguousarray(hidden.detach().float().numpy()),
            "key_mask": key_mask.to(torch.int32).numpy(), "word_starts": word_starts.numpy(),
            "word_mask": word_mask.numpy()}
    if casing_ids is not None:
        feed["casing_ids"] = casing_ids.numpy()
    if not spec.dynamic:
        return ExitGraphOutput(torch.from_numpy(session.run(["logits"], feed)[0]), None, None)
    feed["bounds"] = np.asarray(bounds, np.float32)
    if spec.criterion == "confidence":
        feed["temperatures"] = np.asarray(temperatures or [1.0] * spec.depth, np.float32)
    return ExitGraphOutput(*(torch.from_numpy(a) for a in session.run(["logits", "exit_layer", "queries"], feed)))


def check_exit_graph(adapter: EncoderAdapter, exits: Sequence, spec: ExitGraphSpec, session, quantize: str | None,
                     embedding: EmbeddingParts | None = None) -> None:
    """Run two small random sentences (one for a single-row graph) through `session` with no
    halting before the last layer and through the torch embeddings, layers and exit it reads; a
    RuntimeMismatch unless the logits agree (fp32: each within 1e-3; int8: within 20% in L2 norm, where a wrong kernel
    gives ~100%) and every word exits at the end."""
    generator = torch.Generator().manual_seed(0)
    key_mask = torch.ones(2, 7, dtype=torch.bool)
    key_mask[1, 5:] = False
    word_starts = torch.tensor([[1, 2, 4, 5], [1, 3, 0, 0]])
    word_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    if spec.single_row:  # its graph takes one sentence
        key_mask, word_starts, word_mask = key_mask[:1], word_starts[:1], word_mask[:1]
    rows = key_mask.shape[0]
    casing_ids = None
    if embedding is None:
        hidden = feed = torch.randn(rows, 7, adapter.hidden_size, generator=generator)
    else:
        input_ids = torch.randint(0, embedding.word.shape[0], (rows, 7), generator=generator)
        if embedding.casing is not None:
            casing_ids = torch.randint(0, embedding.casing.shape[0], (rows, 7), generator=generator)
        with torch.inference_mode():
            hidden = adapter.embed(input_ids, casing_ids)
            feed = F.embedding(input_ids, embedding.word)
    with torch.inference_mode():
        states = hidden.clone()
        for index in range(spec.depth):
            states = adapter.run_layer(index, states, key_mask)
        want = exits[spec.depth - 1](states[torch.arange(rows)[:, None], word_starts], present=word_mask)[word_mask]
    logits, exit_layer, queries = run_exit_graph(session, spec, feed, key_mask, word_starts, word_mask,
                                                 [0.0] * spec.depth, None, casing_ids)  # bound 0: nothing halts early
    got = logits[word_mask]
    error, bound, what = disagreement(got, want, quantize, int8_bound=0.2)  # int8 rounding compounds over the layers
    depth_ok = exit_layer is None or (bool((exit_layer[word_mask] == spec.depth).all())
                                      and queries.tolist() == (key_mask.sum(1) * spec.depth).tolist())
    if not (error <= bound and depth_ok):
        import onnxruntime

        raise RuntimeMismatch(f"onnxruntime {onnxruntime.__version__}'s exit graph ({spec.mode}) differs from torch's "
                              f"by {error:.3g} ({what}; allowed {bound:.3g}, {quantize or 'fp32'})")
