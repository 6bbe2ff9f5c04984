"""The engine's layers on ONNX Runtime: an `EncoderAdapter` whose layers are ONNX sessions.

Where a policy's whole loop has an exit graph (`exit_loop`: full depth, static exits, TOKEE and
SENTEE under every criterion, on exits that read no more than their neighbours), the engine
hands it each batch in one call (`seqexit.runtime.exit_graph`). Otherwise (exits that read the
past, the future or a hidden layer; per-exit evaluation) only `run_layer` and
`run_layer_active` change hands, one layer session per call, and the exits, criteria and
halting stay in torch (`seqexit.exits.halting`), with the same semantics. States cross
the boundary as numpy views of torch tensors (no copy in, one array out per call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..encoders.base import EncoderAdapter
from .onnx_exits import ExitGraphs


class OnnxAdapter(EncoderAdapter):
    """`base`'s embeddings, with each layer run by an ONNX Runtime session (see `onnx_graph`)."""

    def __init__(self, base: EncoderAdapter, sessions: list, name: str, exit_graphs: ExitGraphs | None = None) -> None:
        super().__init__(base.encoder)
        self.base = base
        self.layers = base.layers
        self.sessions = sessions
        self.name = name  # "onnx" or "onnx-int8", for messages and records
        self.exit_graphs = exit_graphs  # whole batches in one call, for the policies they cover

    def exit_loop(self, policy, heads=None) -> Callable | None:
        """The exit graph of `policy` (full depth, static exits, TOKEE/SENTEE under every
        criterion, "learned" and "signals" with their trained `heads`); None where it reads an
        exit the graphs do not build (`ExitGraphs.spec`), which runs layer by layer."""
        spec = self.exit_graphs.spec(policy) if self.exit_graphs is not None else None
        if spec is None or (spec.reads_heads and heads is None):
            return None

        def run(batch, bounds, temperatures):
            return self.exit_graphs.run(spec, batch.input_ids, batch.casing_ids, batch.attention_mask, batch.word_starts,
                                        batch.word_mask, bounds, temperatures, heads)

        return run

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Torch on one thread while the layers run on ONNX Runtime's pool: torch is left the
        embeddings and exits (small), and a second torch pool competing for the same cores
        measured 1.2-1.5x slower here (2 cores)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def embed(self, input_ids: torch.Tensor, casing_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.base.embed(input_ids, casing_ids)

    def embedding_parts(self):
        return self.base.embedding_parts()

    def embed_pieces(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.base.embed_pieces(input_ids)

    def _run(self, index: int, hidden: torch.Tensor, key_mask: torch.Tensor, query_index: torch.Tensor) -> torch.Tensor:
        """(batch, queries, hidden): layer `index` at `query_index` (batch, queries) int64."""
        if torch.is_grad_enabled() and hidden.requires_grad:
            raise RuntimeError("the ONNX runtime is for inference; train with runtime='torch'")
        feed = {"hidden": np.ascontiguousarray(hidden.detach().float().numpy()),
                "key_mask": key_mask.to(torch.int32).numpy(), "query_index": query_index.numpy()}
        return torch.from_numpy(self.sessions[index].run(("updated",), feed)[0])

    def run_layer(self, index: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, pieces = attention_mask.shape
        everything = torch.arange(pieces).expand(batch, pieces)  # (batch, pieces)
        return self._run(index, hidden, attention_mask, everything).to(hidden.dtype)

    def run_layer_active(
        self, index: int, hidden: torch.Tensor, key_mask: torch.Tensor, active: torch.Tensor
    ) -> torch.Tensor:
        """As `EncoderAdapter.run_layer_active`: queries at the active pieces only, each row's
        active pieces first (in order) and padded to the longest row with pieces that are
        computed and dropped; writes into `hidden`."""
        counts = active.sum(1)  # (batch,)
        width = int(counts.max())
        if width == 0:
            return hidden
        order = torch.sort(active.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :width]  # (batch, width)
        updated = self._run(index, hidden, key_mask, order)  # (batch, width, hidden)
        taken = torch.arange(width)[None, :] < counts[:, None]  # (batch, width)
        hidden[active] = updated[taken].to(hidden.dtype)
        return hidden
