"""DistilBERT: BERT's post-LayerNorm layer under other names (`transformer.layer[i].attention.q_lin`,
`sa_layer_norm`, `ffn.lin1`, ...), no token types, and its own config keys (`dim`, `n_layers`)."""

from __future__ import annotations

import torch
from torch import nn

from .base import EncoderAdapter, LayerParts

DISTILBERT = "distilbert"
# seqexit's names for the sizes -> DistilBERT's config keys
CONFIG_KEYS = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
               "intermediate_size": "hidden_dim"}
LAYER_PATHS = {  # LayerParts field -> where a DistilBERT layer keeps it
    "query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin", "attn_out": "attention.out_lin",
    "attn_norm": "sa_layer_norm", "ffn_in": "ffn.lin1", "ffn_act": "ffn.activation", "ffn_out": "ffn.lin2",
    "ffn_norm": "output_layer_norm",
}


class DistilBertAdapter(EncoderAdapter):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__(encoder)
        config = encoder.config
        self.layers = [
            LayerParts.from_paths(layer, LAYER_PATHS, num_heads=config.n_heads, attn_dropout=config.attention_dropout,
                                  hidden_dropout=config.dropout)
            for layer in encoder.transformer.layer
        ]

    def embed_pieces(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.embeddings(input_ids)  # word + position embeddings, LayerNorm
