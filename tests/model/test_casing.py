"""Casing features: classes, piece alignment, training, save/compact round trips, engine paths."""

import pytest
import torch

from seqexit.bundle import load_model, save_model
from seqexit.casing import CASING_CLASSES, casing_class
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import MultiExitTagger
from seqexit.training import TrainConfig, train_joint
from seqexit.data import Sentence

EXIT_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.mark.parametrize("word, name", [
    ("paris", "lower"), ("Paris", "title"), ("I", "title"), ("NATO", "upper"), ("iPhone", "mixed"),
    ("McDonald", "mixed"), ("1996", "digits"), ("3-0", "digits"), (",", "other"), ("U.S.", "upper"), ("Émile", "title"),
])
def test_casing_class(word, name):
    assert CASING_CLASSES[casing_class(word)] == name


@pytest.fixture(scope="module")
def cased(tiny_backbone):
    torch.manual_seed(0)
    model = MultiExitTagger.from_backbone(tiny_backbone, EXIT_LABELS, casing=True).eval()
    with torch.no_grad():
        model.encoder.casing_embeddings.weight.normal_(0, 1.0)  # trained-looking, so casing matters
    return model


def test_every_piece_gets_its_words_class(cased):
    [[chunk]] = cased.pieces.encode([["John", "smithxyz", "NATO", ","]])
    assert len(chunk.casing_ids) == len(chunk.input_ids)
    starts = chunk.word_starts + [len(chunk.input_ids) - 1]
    expected = [casing_class(w) for w in ["John", "smithxyz", "NATO", ","]]
    for word, (start, end) in enumerate(zip(starts, starts[1:])):
        assert set(chunk.casing_ids[start:end]) == {expected[word]}
    assert chunk.casing_ids[0] == chunk.casing_ids[-1] == 0
    assert end - start >= 1 and len(chunk.casing_ids[starts[1]:starts[2]]) > 1, "a multi-piece word"


def test_a_fresh_casing_model_equals_the_backbone(tiny_backbone):
    torch.manual_seed(3)
    plain = MultiExitTagger.from_backbone(tiny_backbone, EXIT_LABELS).eval()
    torch.manual_seed(3)
    cased = MultiExitTagger.from_backbone(tiny_backbone, EXIT_LABELS, casing=True).eval()
    words = [["John", "Smith", "was", "in", "PARIS"]]
    batch_plain = plain.pieces.collate([c for cs in plain.pieces.encode(words) for c in cs])
    batch_cased = cased.pieces.collate([c for cs in cased.pieces.encode(words) for c in cs])
    with torch.no_grad():
        assert torch.equal(plain(batch_plain), cased(batch_cased))


def test_casing_changes_predictions_and_every_engine_path_sees_it(cased):
    words = [["John", "Smith", "was", "in", "Paris"], ["john", "smith", "was", "in", "paris"]]
    with torch.inference_mode():
        batch = cased.pieces.collate([c for cs in cased.pieces.encode(words) for c in cs])
        logits = cased(batch)[-1]
    assert not torch.allclose(logits[0], logits[1]), "same pieces, different casing, different logits"
    want = logits.argmax(-1)  # (2, words)
    for policy, batch_size in [(ExitPolicy(), 32), (ExitPolicy(mode="tokee", threshold=0.0, window=1), 1),
                               (ExitPolicy(mode="tokee", threshold=0.0, window=1), 32),
                               (ExitPolicy(mode="sentee", threshold=0.0), 32)]:
        run = run_policy(cased, words, policy, batch_size=batch_size)
        assert torch.equal(torch.stack([r.label_ids for r in run.sentences]), want), policy


def test_missing_casing_ids_is_an_error_not_a_silent_skip(cased):
    batch = cased.pieces.collate([c for cs in cased.pieces.encode([["John"]]) for c in cs])
    batch.casing_ids = None
    with pytest.raises(ValueError, match="casing"):
        cased(batch)


def test_save_load_and_compact_round_trip(cased, tmp_path, monkeypatch):
    words = [["Mary", "went", "to", "BERLIN", "."]]
    want = run_policy(cased, words, ExitPolicy()).sentences[0].label_ids
    loaded = load_model(save_model(cased, tmp_path / "full"))
    assert loaded.config.casing and torch.equal(loaded.encoder.casing_embeddings.weight, cased.encoder.casing_embeddings.weight)
    assert torch.equal(run_policy(loaded, words, ExitPolicy()).sentences[0].label_ids, want)
    compact = load_model(save_model(cased, tmp_path / "compact", compact_against=str(cased.config.backbone)))
    assert torch.equal(compact.encoder.casing_embeddings.weight, cased.encoder.casing_embeddings.weight), "stored whole"


def test_training_moves_the_casing_vectors(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    model = MultiExitTagger.from_backbone(tiny_backbone, EXIT_LABELS, casing=True)
    train = [Sentence(["John", "was", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"])] * 8
    train_joint(model, train, train, TrainConfig(epochs=1, batch_size=4, checkpoint_every=0), tmp_path, progress=False)
    assert model.encoder.casing_embeddings.weight.abs().sum() > 0


def test_saved_weights_are_readable_by_others(cased, tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        full = save_model(cased, tmp_path / "full")
        compact = save_model(cased, tmp_path / "compact", compact_against=str(cased.config.backbone))
    finally:
        os.umask(mask)
    for path in (full / "model.safetensors", compact / "delta.safetensors"):
        assert path.stat().st_mode & 0o777 == 0o644, path
