"""What adopting a Hugging Face tagger costs, against one ordinary fine-tuning epoch of it.

Fine-tunes a `BertForTokenClassification` on the default backbone the ordinary Hugging Face way
(first piece of each word labelled, the others -100, AdamW) for one epoch on the first N
sentences of CoNLL-2003 train, timed: what a user who has a tagger already spent. Saves it as a
Hugging Face folder, then adopts it (`seqexit.adopt.adopt`, labels ignored) on the same
sentences, timed, and checks that the adopted model's full depth gives the original's labels on
the test sentences. Reports both times, their ratio, each exit's agreement with the last exit
before and after, and each exit's F1 on test.
Writes OUTPUT/adopt_speed.{json,md}.

Usage: python benchmarks/adopt_speed.py [--sentences 2000] [--test-sentences 500] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from hf_finetune import encode_batch  # benchmarks/ is first on sys.path
from seqexit.adopt import adopt
from seqexit.backbones import resolve_backbone
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.exits import ExitPolicy, run_policy
from seqexit.runtime.select import cpu_name

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "conll2003"


def fine_tune_one_epoch(folder: Path, sentences, labels: list[str], batch_size: int = 32) -> float:
    """One ordinary epoch of a Hugging Face token classifier on `sentences`, saved to `folder`; seconds."""
    from transformers import AutoTokenizer, BertForTokenClassification

    backbone = resolve_backbone()
    tokenizer = AutoTokenizer.from_pretrained(str(backbone), local_files_only=True)
    model = BertForTokenClassification.from_pretrained(
        str(backbone), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, local_files_only=True)
    index = {label: i for i, label in enumerate(labels)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    torch.manual_seed(0)
    order = torch.randperm(len(sentences)).tolist()
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        encoded, targets = encode_batch(tokenizer, [sentences[i] for i in order[start:start + batch_size]], index, 256)
        loss = model(**encoded, labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000, help="first N sentences of CoNLL-2003 train")
    parser.add_argument("--test-sentences", type=int, default=500, help="first N sentences of CoNLL-2003 test")
    parser.add_argument("--epochs", type=int, default=2, help="adopt's passes over the text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = [s for s in read_file(DATA / "eng.train", span_tags=True) if s.words][:args.sentences]
    test = [s for s in read_file(DATA / "eng.testb", span_tags=True) if s.words][:args.test_sentences]
    labels = sorted({tag for s in train for tag in s.tags}, key=lambda t: (t != "O", t[2:], t[:1]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hf-ner"
        epoch_seconds = fine_tune_one_epoch(folder, train, labels)
        started = time.perf_counter()
        model = adopt(folder, [s.words for s in train], epochs=args.epochs, progress=True)
        adopt_seconds = time.perf_counter() - started
        from transformers import BertForTokenClassification

        original = BertForTokenClassification.from_pretrained(str(folder)).eval()
        batch = model.pieces.collate([c[0] for c in model.pieces.encode([s.words for s in test])])
        with torch.no_grad():
            logits = original(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
        first = logits.gather(1, batch.word_starts[..., None].expand(-1, -1, logits.shape[-1])).argmax(-1)
        hf = [[original.config.id2label[int(i)] for i in row[:n]] for row, n in zip(first, batch.word_mask.sum(1).tolist())]
    ours = [r.labels(model) for r in run_policy(model, [s.words for s in test], ExitPolicy()).sentences]
    same = sum(a == b for x, y in zip(ours, hf) for a, b in zip(x, y))
    exits = evaluate_exits(model, test)
    record = model.training_record or {}
    result = {
        "command": "python " + " ".join(sys.argv), "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
        "train_sentences": len(train), "test_sentences": len(test), "adopt_epochs": args.epochs,
        "ordinary_epoch_seconds": epoch_seconds, "adopt_seconds": adopt_seconds,
        "adopt_over_epoch": adopt_seconds / epoch_seconds,
        "full_depth_same_labels": same, "test_words": sum(map(len, ours)),
        "exit_scores": [e.score for e in exits], "adopted": record.get("adopted"),
    }
    text = report(result)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "adopt_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.output / "adopt_speed.md").write_text(text)
    print(text)


def report(r: dict) -> str:
    return "\n".join([
        "## Adopting a Hugging Face tagger: what it costs", "",
        f"`{r['command']}`: {r['cpu']}, {r['threads']} threads, torch {r['torch']}. A BertForTokenClassification on "
        f"the default backbone fine-tuned for one ordinary epoch on the first {r['train_sentences']} sentences of "
        f"CoNLL-2003 train, then adopted on the same sentences (labels ignored, {r['adopt_epochs']} passes).", "",
        "| | seconds |", "|---|---|",
        f"| one ordinary fine-tuning epoch | {r['ordinary_epoch_seconds']:.1f} |",
        f"| `adopt` ({r['adopt_epochs']} passes, lower exits only) | {r['adopt_seconds']:.1f} |",
        f"| adopt / epoch | {r['adopt_over_epoch']:.2f} |", "",
        f"Full depth of the adopted model gives the original's label for {r['full_depth_same_labels']:,} of "
        f"{r['test_words']:,} test words (first {r['test_sentences']} sentences of the test set). Test span F1 of "
        "every exit: " + " / ".join(f"{s:.2f}" for s in r["exit_scores"]) + ".", "",
    ])


if __name__ == "__main__":
    main()
