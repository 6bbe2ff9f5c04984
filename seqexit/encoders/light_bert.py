"""A BERT encoder built without transformers' model classes, for loading a saved tagger fast.

Importing transformers' BERT classes costs about 2.5 s on a 2-core machine (they bring in
torch._dynamo, torch.distributed.tensor and scipy), more than everything else `seqexit tag`
does on a short file. The engine never calls a Hugging Face forward: it runs the embeddings and
each layer's parts (`encoders.bert.BertFamilyAdapter`). So a tagger read from its folder gets
these modules, with transformers' module and parameter names (the same state dict, the same
operations in the same order), and training from a Hugging Face backbone still goes through
transformers (`seqexit.backbones`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# transformers' ACT2FN entries that are exactly these functions
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


# transformers' BertConfig defaults, for configs saved without some of them
BERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}


class EncoderConfig:
    """The backbone config as attributes (what the adapter and the model read), and back."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def light_bert_covers(config: dict[str, Any]) -> bool:
    """Whether `LightBertModel` builds exactly what transformers' BertModel would for `config`."""
    return (config.get("model_type") == "bert" and config.get("hidden_act", "gelu") in ACTIVATIONS
            and config.get("position_embedding_type", "absolute") == "absolute")


class Embeddings(nn.Module):
    """Word + token type + absolute position embeddings, LayerNorm, dropout (BertEmbeddings)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        size = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, size)
        self.LayerNorm = nn.LayerNorm(size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, pieces) -> (batch, pieces, hidden). At inference (eval, no autograd) without
        token types (all type 0), the type row and the positions are added as slices rather
        than looked up and the modules' own calls are skipped: the same sums in the same
        order, in half the time at batch 1. Otherwise transformers' lookups, so that gradients
        (and training after a save and load) stay bit-identical too."""
        if token_type_ids is None and not self.training and not torch.is_grad_enabled():
            words = F.embedding(input_ids, self.word_embeddings.weight, self.word_embeddings.padding_idx)
            embeddings = words + self.token_type_embeddings.weight[0]
            embeddings = embeddings + self.position_embeddings.weight[: input_ids.shape[1]]
            norm = self.LayerNorm
            return F.layer_norm(embeddings, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


class _Modules(nn.Module):
    """A container of named submodules (transformers' names, "self" included)."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)


def _layer(config: EncoderConfig) -> nn.Module:
    """One layer with BertLayer's module names: attention.self.{query,key,value},
    attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}."""
    size, inner, eps = config.hidden_size, config.intermediate_size, config.layer_norm_eps
    def add_and_norm(width: int) -> nn.Module:
        return _Modules({"dense": nn.Linear(width, size), "LayerNorm": nn.LayerNorm(size, eps=eps),
                         "dropout": nn.Dropout(config.hidden_dropout_prob)})

    projections = _Modules({name: nn.Linear(size, size) for name in ("query", "key", "value")})
    intermediate = _Modules({"dense": nn.Linear(size, inner)})
    intermediate.intermediate_act_fn = ACTIVATIONS[config.hidden_act]
    attention = _Modules({"self": projections, "output": add_and_norm(size)})
    return _Modules({"attention": attention, "intermediate": intermediate, "output": add_and_norm(inner)})


class LightBertModel(nn.Module):
    """transformers' BertModel without its pooler and forward: embeddings and encoder.layer[i]."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        if not light_bert_covers(config):
            raise ValueError(f"LightBertModel builds BERT with {', '.join(ACTIVATIONS)} and absolute positions only")
        self.config = EncoderConfig({**BERT_DEFAULTS, **config})
        self.embeddings = Embeddings(self.config)
        self.encoder = _Modules({"layer": nn.ModuleList(_layer(self.config) for _ in range(self.config.num_hidden_layers))})
        self.pooler = None

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings
