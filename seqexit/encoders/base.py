"""What the early-exit engine needs from an encoder: embeddings, then layers it can run part by
part (so that a later layer can run on a subset of tokens). One adapter per encoder family."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..casing import with_casing


@dataclass
class LayerParts:
    """The modules of one post-LayerNorm transformer layer (BERT family)."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attn_out: nn.Linear
    attn_norm: nn.LayerNorm
    ffn_in: nn.Linear
    ffn_act: Callable[[torch.Tensor], torch.Tensor]
    ffn_out: nn.Linear
    ffn_norm: nn.LayerNorm
    num_heads: int
    attn_dropout: float
    hidden_dropout: float
    # an additive attention bias from the query and key positions (MPNet's relative positions):
    # (query positions (batch, q) long, pieces) -> (batch, heads, q, pieces); None: none
    position_bias: Callable[[torch.Tensor, int], torch.Tensor] | None = field(default=None, repr=False)
    fused_kv: tuple | None = field(default=None, repr=False)  # (weights' versions, weight, bias)
    key_value: nn.Module | None = field(default=None, repr=False)  # a fixed fused projection (int8)

    @classmethod
    def from_paths(cls, layer: nn.Module, paths: dict[str, str], **settings) -> LayerParts:
        """The parts of one Hugging Face layer module, each found at its dotted attribute path
        (`paths`: field -> path, e.g. "query" -> "attention.self.query"); `settings`: the other
        fields (num_heads, dropouts, ...). How one family's layer maps onto the engine's parts."""
        def find(path: str):
            part = layer
            for name in path.split("."):
                part = getattr(part, name)
            return part

        return cls(**{field_name: find(path) for field_name, path in paths.items()}, **settings)

    def key_value_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The key and value projections stacked into one (2 * hidden, hidden) matrix, for one
        matrix product instead of two at inference; rebuilt whenever the weights change."""
        tensors = (self.key.weight, self.value.weight, self.key.bias, self.value.bias)
        versions = tuple((t._version, t.data_ptr()) for t in tensors)
        if self.fused_kv is None or self.fused_kv[0] != versions:
            with torch.no_grad():
                self.fused_kv = (versions, torch.cat(tensors[:2]), torch.cat(tensors[2:]))
        return self.fused_kv[1], self.fused_kv[2]

    def project_key_value(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, k, hidden) -> (batch, k, 2 * hidden): keys then values, in one product."""
        if self.key_value is not None:
            return self.key_value(x)
        return F.linear(x, *self.key_value_weights())

    @property
    def trainable(self) -> bool:
        """Whether these projections take gradients (False for int8 kernels, which have none)."""
        weight = self.key.weight
        return isinstance(weight, torch.Tensor) and weight.requires_grad


@dataclass
class EmbeddingParts:
    """Embeddings of the plain BERT form, as tensors: LayerNorm(word[id] + token_type[0] +
    position[i]) + casing[class] (casing optional). Runtimes that embed inside their own graph
    read these; other forms (RoBERTa's positions, ELECTRA's projection) have none."""

    word: torch.Tensor  # (vocab, hidden)
    token_type: torch.Tensor  # (hidden,): type 0, the only one the engine uses
    position: torch.Tensor  # (max_positions, hidden)
    norm: nn.LayerNorm
    casing: torch.Tensor | None  # (classes, hidden)

    def tensors(self) -> list[torch.Tensor]:
        out = [self.word, self.token_type, self.position, self.norm.weight, self.norm.bias]
        return out + ([self.casing] if self.casing is not None else [])


class EncoderAdapter:
    """An encoder seen as `embed` followed by `layers`; subclasses map a family's modules.

    A view, not a module: it holds references into the encoder, whose own state dict and
    train/eval mode stay the single source of truth.
    """

    layers: list[LayerParts]
    # rows -> padded rows for packed products (None: no padding); set by `seqexit.quantize` for
    # kernels that build a new kernel per input shape, so that TOKEE's ever-changing row counts
    # fall into a few sizes they have already built
    pad_rows: Callable[[int], int] | None = None

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder

    @property
    def training(self) -> bool:
        return self.encoder.training

    def running(self) -> contextlib.AbstractContextManager:
        """A context the engine holds around a run (batches of layers); torch needs none."""
        return contextlib.nullcontext()

    def exit_loop(self, policy, heads=None) -> Callable | None:
        """A function that runs a whole batch's embeddings, layers, exits and halting under
        `policy` (an `ExitPolicy`; `heads`: its criterion's trained heads, if it reads any) in
        one call, where this adapter has one (ONNX Runtime's exit graphs); None: the engine's own layer loop runs (`seqexit.exits.halting`). Its
        arguments: (batch, doubt bounds, temperatures) -> (logits at each word's exit, exit
        layers, the layers each row's pieces ran as queries, summed; the last two None for full
        depth and static exits)."""
        return None

    def embedding_parts(self) -> EmbeddingParts | None:
        """The embeddings as `EmbeddingParts` where they have the plain BERT form, else None."""
        return None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.layers[0].query.in_features

    @property
    def state_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Device and dtype of the hidden states (LayerNorm's, which int8 leaves in float)."""
        weight = self.layers[0].attn_norm.weight
        return weight.device, weight.dtype

    def embed(self, input_ids: torch.Tensor, casing_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, pieces) piece ids [and casing class ids] -> (batch, pieces, hidden)"""
        return with_casing(self.encoder, self.embed_pieces(input_ids), casing_ids)

    def embed_pieces(self, input_ids: torch.Tensor) -> torch.Tensor:  # (batch, pieces) -> (batch, pieces, hidden)
        raise NotImplementedError

    def run_layer(self, index: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Layer `index` on every piece. hidden: (batch, pieces, hidden); attention_mask: (batch, pieces) bool."""
        parts = self.layers[index]
        context = attention(parts, hidden, hidden, attention_mask, self.training)
        return feed_forward(parts, hidden, context, self.training)

    def run_layer_active(
        self, index: int, hidden: torch.Tensor, key_mask: torch.Tensor, active: torch.Tensor
    ) -> torch.Tensor:
        """Layer `index` for the `active` pieces only; every other piece is copied unchanged.

        hidden: (batch, pieces, hidden); key_mask: (batch, pieces) bool, the pieces attended to
        (halted ones included); active: (batch, pieces) bool, a subset of key_mask. Queries,
        attention output and feed-forward run on the active pieces packed across the batch
        (M of them); keys and values on every piece. Under autograd returns a new tensor; in
        inference writes into `hidden` (the caller passes ownership) to save a copy per layer,
        or into a contiguous copy that it returns where `hidden` has no `piece_rows` view.
        """
        parts = self.layers[index]
        rows, cols = active.nonzero(as_tuple=True)  # (M,), row-major
        n = rows.numel()
        if n == 0:
            return hidden
        grad = torch.is_grad_enabled()
        flat_view = None if grad else piece_rows(hidden)  # a group's slice of the engine's states has one
        if flat_view is None:
            hidden = hidden.contiguous()
            flat_view = hidden.view(-1, hidden.shape[-1]), hidden.shape[1]
        flat, row_stride = flat_view  # pieces as rows of `flat`: 1-D gathers and scatters
        counts = active.sum(1)  # (batch,)
        width = int(counts.max())
        slots = torch.arange(n, device=hidden.device) - (counts.cumsum(0) - counts)[rows]  # (M,)
        at, into = rows * row_stride + cols, rows * width + slots  # (M,): rows of `flat`, of the queries
        gather_at, gather_into = at, into
        padded = self.pad_rows(n) if self.pad_rows is not None else n
        if padded > n:  # repeat the last piece: (M',) indices, computed and dropped
            gather_at, gather_into = (torch.cat([t, t[-1:].expand(padded - n)]) for t in (at, into))
        packed = flat.index_select(0, gather_at)  # (M', hidden)
        q = parts.query(packed)[:n]  # (M, hidden)
        q_padded = q.new_zeros(hidden.shape[0] * width, q.shape[-1]).index_copy(0, into, q)  # (batch * width, hidden)
        q_heads = split_heads(q_padded.view(hidden.shape[0], width, -1), parts.num_heads)
        positions = None
        if parts.position_bias is not None:  # each query slot's piece position, (batch, width)
            positions = cols.new_zeros(hidden.shape[0] * width).index_copy(0, into, cols).view(hidden.shape[0], width)
        context = attend(parts, q_heads, hidden, key_mask, self.training, positions)  # (batch, width, hidden)
        context = context.reshape(-1, context.shape[-1]).index_select(0, gather_into)  # (M', hidden)
        updated = feed_forward(parts, packed, context, self.training)[:n]  # (M, hidden)
        if grad and (hidden.requires_grad or updated.requires_grad):  # autograd needs the old states intact
            return flat.index_copy(0, at, updated).view_as(hidden)
        flat.index_copy_(0, at, updated)
        return hidden

def piece_rows(hidden: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """A (rows, hidden) view of the storage under `hidden` (batch, pieces, hidden), where piece
    (b, p) is row b * row_stride + p, and row_stride; None where the layout has no such view.
    A slice of a wider tensor (the engine's groups) has one too, so gathers and scatters of
    pieces are 1-D index operations on it instead of 2-D advanced indexing."""
    batch, pieces, size = hidden.shape
    stride = hidden.stride()
    if stride[2] != 1 or (pieces > 1 and stride[1] != size) or (batch > 1 and stride[0] % size):
        return None
    row_stride = stride[0] // size if batch > 1 else pieces
    rows = (batch - 1) * row_stride + pieces if batch else 0
    return hidden.as_strided((rows, size), (size, 1)), row_stride

def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, n, hidden) -> (batch, heads, n, head_dim)"""
    batch, n, hidden = x.shape
    return x.unflatten(-1, (num_heads, hidden // num_heads)).transpose(1, 2)


def attention(
    parts: LayerParts,
    queries_from: torch.Tensor,
    keys_from: torch.Tensor,
    key_mask: torch.Tensor,
    training: bool,
) -> torch.Tensor:
    """Self-attention of `queries_from` (batch, q, hidden) over `keys_from` (batch, k, hidden),
    key_mask (batch, k) bool; returns the context (batch, q, hidden) before the output projection."""
    return attend(parts, split_heads(parts.query(queries_from), parts.num_heads), keys_from, key_mask, training)


def attend(
    parts: LayerParts, q: torch.Tensor, keys_from: torch.Tensor, key_mask: torch.Tensor, training: bool,
    query_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected queries q (batch, heads, q, head_dim) over keys/values from `keys_from`
    (batch, k, hidden) with key_mask (batch, k) bool; returns the context (batch, q, hidden).
    query_positions (batch, q): the queries' piece positions, for a layer with a position bias
    (default: 0..q-1, every piece a query)."""
    if torch.is_grad_enabled() and parts.trainable:
        k, v = parts.key(keys_from), parts.value(keys_from)
    else:  # inference: one product for both, (batch, k, 2 * hidden) split into views; on a
        # contiguous input, since a strided one (the engine's group slices) takes a slower batched product
        k, v = parts.project_key_value(keys_from.contiguous()).chunk(2, dim=-1)
    k, v = split_heads(k, parts.num_heads), split_heads(v, parts.num_heads)  # (batch, heads, k, head_dim)
    mask = key_mask[:, None, None, :]  # (batch, 1, 1, k)
    if parts.position_bias is not None:  # additive: the bias where a key is there, -inf where it is not
        if query_positions is None:
            query_positions = torch.arange(q.shape[2], device=q.device).expand(q.shape[0], -1)
        bias = parts.position_bias(query_positions, keys_from.shape[1]).to(q.dtype)  # (batch, heads, q, k)
        mask = bias.masked_fill(~mask, float("-inf"))
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=parts.attn_dropout if training else 0.0)
    batch, heads, n, head_dim = context.shape
    return context.transpose(1, 2).reshape(batch, n, heads * head_dim)


def feed_forward(parts: LayerParts, residual: torch.Tensor, context: torch.Tensor, training: bool) -> torch.Tensor:
    """Attention output + residual + LayerNorm, then the feed-forward block + residual + LayerNorm."""
    p = parts.hidden_dropout if training else 0.0
    hidden = parts.attn_norm(F.dropout(parts.attn_out(context), p, training) + residual)
    ffn = parts.ffn_out(parts.ffn_act(parts.ffn_in(hidden)))
    return parts.ffn_norm(F.dropout(ffn, p, training) + hidden)
