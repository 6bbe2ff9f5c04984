"""seqexit's own BERT modules (`encoders.light_bert`) against transformers' BertModel: the same
state dict, bit-identical embeddings and layers, the same labels from a saved tagger, and a
load that never imports transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import BertConfig, BertModel

from seqexit.bundle import load_model, save_model
from seqexit.encoders import adapter_for
from seqexit.encoders.light_bert import LightBertModel, light_bert_covers
from seqexit.exits import ExitPolicy, run_policy


@pytest.mark.parametrize("activation", ["gelu", "relu", "gelu_pytorch_tanh"])
def test_same_weights_and_bit_identical_outputs(activation):
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=50,
                        hidden_act=activation)
    torch.manual_seed(0)
    reference = BertModel(config, add_pooling_layer=False).eval()
    light = LightBertModel(config.to_dict()).eval()
    assert {k: v.shape for k, v in light.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    light.load_state_dict(reference.state_dict())
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 5:] = False
    want, got = adapter_for(reference), adapter_for(light)
    with torch.inference_mode():
        hidden = want.embed(ids)
        assert torch.equal(got.embed(ids), hidden)
        for layer in range(2):
            assert torch.equal(got.run_layer(layer, hidden, mask), want.run_layer(layer, hidden, mask))


def test_embedding_gradients_are_bit_identical_too():
    """Training a loaded tagger must follow the same path as training the original: under
    autograd the light embeddings take transformers' lookups (their fast inference form sums
    the same values but would accumulate the type and position gradients in another order)."""
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=50)
    torch.manual_seed(0)
    reference = BertModel(config, add_pooling_layer=False).train()
    light = LightBertModel(config.to_dict()).train()
    light.load_state_dict(reference.state_dict())
    ids = torch.randint(0, 50, (4, 9))
    grads = []
    for model in (reference, light):
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad()
        (adapter_for(model).embed(ids) * torch.linspace(-1, 1, 32)).square().sum().backward()
        embeddings = model.embeddings
        grads.append([m.weight.grad.clone() for m in (embeddings.word_embeddings, embeddings.token_type_embeddings,
                                                       embeddings.position_embeddings, embeddings.LayerNorm)])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_other_families_keep_transformers_classes():
    assert light_bert_covers({"model_type": "bert", "hidden_act": "gelu"})
    assert not light_bert_covers({"model_type": "roberta"})
    assert not light_bert_covers({"model_type": "bert", "hidden_act": "gelu_new"})  # transformers' own formula
    assert not light_bert_covers({"model_type": "bert", "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="absolute positions only"):
        LightBertModel({"model_type": "bert", "position_embedding_type": "relative_key"})


def test_a_saved_tagger_loads_on_light_modules_with_the_same_labels(make_tagger, sentences, tmp_path):
    model = make_tagger(4)
    assert isinstance(model.encoder, BertModel), "made from a Hugging Face backbone"
    save_model(model, tmp_path / "tagger")
    loaded = load_model(tmp_path / "tagger")
    assert isinstance(loaded.encoder, LightBertModel)
    for policy in (ExitPolicy(), ExitPolicy.tokee(0.9, window=1)):
        want = [(r.label_ids.tolist(), r.exit_layer.tolist()) for r in run_policy(model, sentences, policy).sentences]
        got = [(r.label_ids.tolist(), r.exit_layer.tolist()) for r in run_policy(loaded, sentences, policy).sentences]
        assert got == want


def test_loading_imports_no_transformers(make_tagger, tmp_path):
    """A BERT tagger loads on the light modules and the light tokenizer: transformers stays out."""
    save_model(make_tagger(4), tmp_path / "tagger")
    heavy = ["transformers", "transformers.modeling_utils", "torch._dynamo"]
    code = (f"import json, sys\nfrom seqexit.bundle import load_model\nload_model({str(tmp_path / 'tagger')!r})\n"
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
