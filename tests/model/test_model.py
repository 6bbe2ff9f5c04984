import pytest
import torch

from seqexit.bundle import load_model, save_model
from seqexit.model import MultiExitTagger
from seqexit.training.forward import exit_logits, scale_grad

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture()
def model(tiny_backbone):
    torch.manual_seed(0)
    return MultiExitTagger.from_backbone(tiny_backbone, LABELS).eval()


def _batch(model, sentences):
    return model.pieces.collate([chunks[0] for chunks in model.pieces.encode(sentences)])


def test_one_logit_row_per_exit_and_word(model):
    batch = _batch(model, [["john", "smith", "said"], ["paris"]])
    logits = model(batch)
    assert logits.shape == (4, 2, 3, len(LABELS))


def test_static_exit_runs_only_the_layers_it_needs(model, monkeypatch):
    batch = _batch(model, [["john", "smith", "was", "in", "berlin"]])
    full = model(batch)
    calls = []
    original = model.adapter.run_layer
    monkeypatch.setattr(model.adapter, "run_layer", lambda i, *a: calls.append(i) or original(i, *a))
    static = model(batch, num_layers=2, exits="last")
    assert calls == [0, 1]
    assert torch.allclose(static[0], full[1], atol=1e-6)


def test_save_load_round_trip(model, tmp_path):
    batch = _batch(model, [["the", "united", "nations"]])
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.labels == LABELS
    assert torch.equal(loaded(batch), model(batch))
    assert not list((tmp_path / "m").glob("*.bin")), "weights must be safetensors, never pickles"


def test_load_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a seqexit model folder"):
        load_model(tmp_path)


def test_scale_grad_scales_only_the_backward():
    x = torch.ones(3, requires_grad=True)
    y = scale_grad(x, 0.25)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.25))


def test_grad_scale_zero_lets_only_the_last_exit_train_the_encoder(model):
    """With exit_grad_scale=0, the encoder's gradient is that of the last exit's loss alone."""
    model.train()
    batch = _batch(model, [["john", "smith", "said"], ["paris", "is", "new"]])
    target = torch.tensor([[1, 2, 0], [3, 0, 0]])

    def encoder_grads(loss_of_logits, scale):
        model.zero_grad()
        torch.manual_seed(1)
        loss_of_logits(exit_logits(model, batch, exit_grad_scale=scale)).backward()
        return [p.grad.clone() for p in model.encoder.parameters() if p.grad is not None]

    def all_exits(logits):
        return sum(torch.nn.functional.cross_entropy(l.reshape(-1, len(LABELS)), target.reshape(-1)) for l in logits)

    def last_exit(logits):
        return torch.nn.functional.cross_entropy(logits[-1].reshape(-1, len(LABELS)), target.reshape(-1))

    detached = encoder_grads(all_exits, 0.0)
    only_last = encoder_grads(last_exit, 0.0)
    coupled = encoder_grads(all_exits, 1.0)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(detached, only_last))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(coupled, only_last))


def test_a_truncated_backbone_is_its_first_layers_and_round_trips(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    full = MultiExitTagger.from_backbone(tiny_backbone, ["O", "B-PER", "I-PER"]).eval()
    torch.manual_seed(0)
    small = MultiExitTagger.from_backbone(tiny_backbone, ["O", "B-PER", "I-PER"], num_layers=2).eval()
    assert small.num_layers == 2 and len(small.exits) == 2
    batch = small.pieces.collate([c for cs in small.pieces.encode([["john", "smith", "said"]]) for c in cs])
    with torch.no_grad():
        hidden_full = full.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long(),
                                   output_hidden_states=True).hidden_states[2]
        hidden_small = small.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).last_hidden_state
    assert torch.allclose(hidden_full, hidden_small, atol=1e-6)
    loaded = load_model(save_model(small, tmp_path / "small"))
    assert loaded.num_layers == 2
    with torch.no_grad():
        assert torch.equal(loaded(batch), small(batch))
    with pytest.raises(ValueError, match="num_layers must be in 1..4"):
        MultiExitTagger.from_backbone(tiny_backbone, ["O"], num_layers=5)
