"""Export to a plain Hugging Face token classifier: same full-depth logits, a pipeline loads it."""

import pytest
import torch
from transformers import AutoModelForTokenClassification, pipeline

from seqexit.export import to_hf_token_classifier
from seqexit.model import MultiExitTagger

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_the_exported_classifier_gives_the_last_exits_logits(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    model = MultiExitTagger.from_backbone(tiny_backbone, LABELS).eval()
    folder = to_hf_token_classifier(model, tmp_path / "hf")
    hf = AutoModelForTokenClassification.from_pretrained(str(folder), local_files_only=True).eval()
    assert hf.config.id2label == dict(enumerate(LABELS))
    batch = model.pieces.collate([c for cs in model.pieces.encode([["john", "smith", "said"], ["paris"]]) for c in cs])
    with torch.no_grad():
        ours = model(batch, exits="last")[0]  # (batch, words, labels)
        theirs = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
    index = batch.word_starts[..., None].expand(-1, -1, theirs.shape[-1])
    assert torch.allclose(ours[batch.word_mask], theirs.gather(1, index)[batch.word_mask], atol=1e-5)
    tagger = pipeline("token-classification", model=str(folder), device="cpu", ignore_labels=[])
    served = tagger("john smith said")  # one piece per word in the tiny vocabulary
    assert [t["word"] for t in served] == ["john", "smith", "said"]
    assert [t["entity"] for t in served] == [LABELS[i] for i in ours[0, :3].argmax(-1).tolist()]


def test_a_casing_model_is_refused(tiny_backbone, tmp_path):
    model = MultiExitTagger.from_backbone(tiny_backbone, LABELS, casing=True)
    with pytest.raises(ValueError, match="casing"):
        to_hf_token_classifier(model, tmp_path / "hf")
