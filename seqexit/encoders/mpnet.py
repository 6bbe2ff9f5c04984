"""MPNet: BERT's post-LayerNorm layer under other names (`attention.attn.q`, ...), plus a
relative position bias on the attention scores, shared by every layer: a learned value per head
and bucket of the key's offset from the query. A packed TOKEE layer reads the bias at its
queries' own positions, so halting changes nothing else."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import EncoderAdapter, LayerParts

MPNET = "mpnet"
LAYER_PATHS = {  # LayerParts field -> where an MPNet layer keeps it
    "query": "attention.attn.q", "key": "attention.attn.k", "value": "attention.attn.v", "attn_out": "attention.attn.o",
    "attn_norm": "attention.LayerNorm", "ffn_in": "intermediate.dense", "ffn_act": "intermediate.intermediate_act_fn",
    "ffn_out": "output.dense", "ffn_norm": "output.LayerNorm",
}


def relative_bucket(offset: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """The bucket of each key's offset from its query (key position - query position): the
    two directions get half the buckets each, exact up to a quarter of them, then logarithmic
    up to `max_distance` (MPNet's and T5's scheme)."""
    half = num_buckets // 2
    distance = -offset
    bucket = (distance < 0).long() * half
    distance = distance.abs()
    exact = half // 2
    far = exact + (torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    return bucket + torch.where(distance < exact, distance, far.clamp(max=half - 1))


class MPNetAdapter(EncoderAdapter):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__(encoder)
        config = encoder.config
        self.relative = encoder.encoder.relative_attention_bias  # (buckets, heads)
        self.layers = [
            LayerParts.from_paths(layer, LAYER_PATHS, num_heads=config.num_attention_heads,
                                  attn_dropout=config.attention_probs_dropout_prob,
                                  hidden_dropout=config.hidden_dropout_prob, position_bias=self.position_bias)
            for layer in encoder.encoder.layer
        ]

    def position_bias(self, query_positions: torch.Tensor, pieces: int) -> torch.Tensor:
        """(batch, q) query positions, `pieces` keys -> (batch, heads, q, pieces) bias."""
        keys = torch.arange(pieces, device=query_positions.device)
        # 32 buckets whatever the config says: what Hugging Face's MPNet computes
        buckets = relative_bucket(keys[None, None, :] - query_positions[..., None], 32)  # (batch, q, pieces)
        return self.relative(buckets).permute(0, 3, 1, 2)

    def embed_pieces(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.embeddings(input_ids=input_ids)  # positions from the ids, as MPNet counts them
