"""The BERT family (BERT, MiniLM, RoBERTa, XLM-R, CamemBERT, ELECTRA): same layer layout,
`encoder.layer[i].attention.self.{query,key,value}` and friends."""

from __future__ import annotations

import torch
from torch import nn

from .base import EmbeddingParts, EncoderAdapter, LayerParts
from .light_bert import Embeddings

BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
LAYER_PATHS = {  # LayerParts field -> where a BERT layer keeps it
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense", "ffn_act": "intermediate.intermediate_act_fn",
    "ffn_out": "output.dense", "ffn_norm": "output.LayerNorm",
}


class BertFamilyAdapter(EncoderAdapter):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__(encoder)
        config = encoder.config
        self.layers = [
            LayerParts.from_paths(layer, LAYER_PATHS, num_heads=config.num_attention_heads,
                                  attn_dropout=config.attention_probs_dropout_prob,
                                  hidden_dropout=config.hidden_dropout_prob)
            for layer in encoder.encoder.layer
        ]

    def embed_pieces(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.embeddings(input_ids=input_ids)  # token type 0 everywhere
        project = getattr(self.encoder, "embeddings_project", None)  # ELECTRA-small style
        return project(hidden) if project is not None else hidden

    def embedding_parts(self) -> EmbeddingParts | None:
        """BERT's own embeddings (seqexit's light ones or transformers'), absolute positions, no
        projection; RoBERTa-style position ids and ELECTRA's projection have none."""
        embeddings = self.encoder.embeddings
        plain = isinstance(embeddings, Embeddings) or type(embeddings).__name__ == "BertEmbeddings"
        absolute = getattr(self.encoder.config, "position_embedding_type", "absolute") == "absolute"
        if not plain or not absolute or getattr(self.encoder, "embeddings_project", None) is not None:
            return None
        casing = getattr(self.encoder, "casing_embeddings", None)
        return EmbeddingParts(embeddings.word_embeddings.weight, embeddings.token_type_embeddings.weight[0],
                              embeddings.position_embeddings.weight, embeddings.LayerNorm,
                              None if casing is None else casing.weight)

