"""The adapter's part-by-part layers must compute exactly what the Hugging Face model computes."""

import pytest
import torch
from transformers import BertConfig, BertModel, ElectraConfig, ElectraModel, RobertaConfig, RobertaModel

from seqexit.encoders import adapter_for


def _run_adapter(model, input_ids, mask):
    adapter = adapter_for(model)
    hidden = adapter.embed(input_ids)
    for layer in range(adapter.num_layers):
        hidden = adapter.run_layer(layer, hidden, mask)
    return hidden


@pytest.mark.parametrize(
    "config_cls, model_cls, extra",
    [
        (BertConfig, BertModel, {}),
        (RobertaConfig, RobertaModel, {"pad_token_id": 1, "type_vocab_size": 1}),
        (ElectraConfig, ElectraModel, {"embedding_size": 16}),
    ],
)
def test_adapter_matches_hugging_face(config_cls, model_cls, extra):
    torch.manual_seed(0)
    config = config_cls(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40, **extra)
    model = model_cls(config).eval()
    input_ids = torch.randint(5, 50, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2, 3:] = False
    input_ids[~mask] = config.pad_token_id
    with torch.no_grad():
        ours = _run_adapter(model, input_ids, mask)
        theirs = model(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-5)


def test_unsupported_encoder_is_named():
    class Fake(torch.nn.Module):
        config = type("C", (), {"model_type": "gpt2"})()

    with pytest.raises(ValueError, match="gpt2"):
        adapter_for(Fake())
