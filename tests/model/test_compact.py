"""Compact model folders: deltas against the installed backbone round-trip within int8 error."""

from __future__ import annotations

import copy

import pytest
import torch


from seqexit.bundle import COMPACT_FILE, DELTA_FILE, WEIGHTS_FILE, load_model, save_model
from seqexit.model import MultiExitTagger


@pytest.fixture()
def tuned(make_tagger):
    """A tagger whose encoder moved away from its backbone (`config.backbone`), as fine-tuning
    leaves it (word embeddings untouched, as the recipes keep them)."""
    torch.manual_seed(3)
    model = copy.deepcopy(make_tagger(4))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "word_embeddings" not in name:
                param.add_(0.01 * torch.randn_like(param))
    return model.eval()


def test_compact_round_trip_is_close_and_leaves_untrained_tensors_exact(tuned, tmp_path, sentences):
    folder = save_model(tuned, tmp_path / "compact", compact_against=tuned.config.backbone)
    assert (folder / COMPACT_FILE).is_file() and (folder / DELTA_FILE).is_file() and not (folder / WEIGHTS_FILE).exists()
    loaded = load_model(folder)
    original, restored = tuned.state_dict(), loaded.state_dict()
    for key, value in original.items():
        if "word_embeddings" in key:
            assert torch.equal(restored[key], value), "an untrained tensor is the backbone's, bit for bit"
        elif value.dim() == 2:
            row_scale = (value - restored[key]).abs().amax(1)
            assert (row_scale <= 0.01 * 5 / 127).all(), key  # half a step of each row's int8 scale, generously
        else:
            assert torch.allclose(restored[key], value, atol=1e-6), key
    full = save_model(tuned, tmp_path / "full")
    assert sum(p.stat().st_size for p in folder.iterdir()) < (full / WEIGHTS_FILE).stat().st_size / 2
    from seqexit.exits import run_exits
    ours = run_exits(loaded, sentences, all_exits=True)
    theirs = run_exits(tuned, sentences, all_exits=True)
    agree = sum(int((a.label_ids == b.label_ids).sum()) for a, b in zip(ours, theirs))
    total = sum(a.label_ids.numel() for a in ours)
    assert agree / total > 0.95


def test_a_compact_folder_refuses_another_backbone(tuned, tiny_backbone, tmp_path):
    folder = save_model(tuned, tmp_path / "compact", compact_against=tuned.config.backbone)
    record = (folder / COMPACT_FILE).read_text().replace(tuned.config.backbone, str(tiny_backbone))
    (folder / COMPACT_FILE).write_text(record)
    with pytest.raises(ValueError, match="another version of backbone"):
        load_model(folder)
