"""Fine-tune a Hugging Face token classifier the ordinary way: what a user who already has a tagger did.

`AutoModelForTokenClassification` on a local backbone folder, the first word piece of each word
labelled and the others -100, AdamW with linear warm-up and decay, dropout on; optionally only the
backbone's first k layers (`--layers k`: the DistilBERT-style smaller static model). Batches are
drawn in length-sorted groups (as `Trainer(group_by_length=True)`) so that padding costs little on
a CPU. A checkpoint (weights, optimiser, schedule, RNG, position in the epoch's batch order) is
written every `--checkpoint-every` batches to OUT.checkpoint, and the same command resumes from
it; OUT is written once, at the end, with `save_pretrained`.

Usage: python benchmarks/hf_finetune.py BACKBONE_FOLDER -o OUT [--layers K] [--epochs 1] [--lr 5e-5]
       [--batch-size 16] [--train ../shared/data/conll2003/eng.train] [--limit N] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import torch

from seqexit.data.formats import read_file
from seqexit.training.checkpoint import load_checkpoint, save_checkpoint

HERE = Path(__file__).resolve().parent
CONLL = HERE.parent.parent / "shared" / "data" / "conll2003"


def label_order(tags: set[str]) -> list[str]:
    """O first, then each type's B- and I- together: the order Hugging Face's CoNLL-2003 uses."""
    return sorted(tags, key=lambda t: (t != "O", t[2:], t[:1]))


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of sentences of similar length: shuffle, sort within windows of 50
    batches, cut, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 50 * batch_size
    order = [i for start in range(0, len(order), window)
             for i in sorted(order[start:start + window], key=lambda i: -lengths[i])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def encode_batch(tokenizer, sentences, index: dict[str, int], max_length: int):
    """Word pieces of a batch and their targets: the tag id at each word's first piece, else -100."""
    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
    targets = torch.full(encoded["input_ids"].shape, -100)
    for row, sentence in enumerate(sentences):
        seen = set()
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word not in seen:
                seen.add(word)
                targets[row, position] = index[sentence.tags[word]]
    return encoded, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbone", type=Path, help="a local Hugging Face encoder folder")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--train", type=Path, default=CONLL / "eng.train")
    parser.add_argument("--layers", type=int, default=None, help="keep only the backbone's first K layers")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the steps spent warming up")
    parser.add_argument("--limit", type=int, default=None, help="only the first N training sentences")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    train = [s for s in read_file(args.train, span_tags=True) if s.words][:args.limit]
    labels = label_order({tag for s in train for tag in s.tags})
    index = {label: i for i, label in enumerate(labels)}
    extra = {} if args.layers is None else {"num_hidden_layers": args.layers}
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(args.backbone), local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(
        str(args.backbone), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index,
        local_files_only=True, **extra)
    lengths = [len(tokenizer(s.words, is_split_into_words=True)["input_ids"]) for s in train]
    steps_per_epoch = -(-len(train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup * total)
    decay = ["bias", "LayerNorm.weight", "layer_norm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(d in n for d in decay)], "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(d in n for d in decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup)))
    settings = {key: str(value) for key, value in vars(args).items() if key not in ("threads", "checkpoint_every")}
    checkpoint = args.output.with_name(args.output.name + ".checkpoint")
    progress = {"step": 0, "seconds": 0.0, "losses": [], "settings": settings}
    if (checkpoint / "state.json").is_file():
        saved = json.loads((checkpoint / "state.json").read_text())["progress"]
        if saved.get("settings") != settings:
            sys.exit(f"{checkpoint}: written with other settings ({saved.get('settings')}); remove it to start over")
        progress = load_checkpoint(checkpoint, model, optimizer, scheduler)
        print(f"resuming at step {progress['step']} of {total}", file=sys.stderr)
    model.train()
    started = time.perf_counter() - progress["seconds"]
    from tqdm import tqdm

    bar = tqdm(total=total, initial=progress["step"], desc=f"fine-tune {args.output.name}", unit="batch")
    for epoch in range(args.epochs):
        batches = length_grouped_batches(lengths, args.batch_size, random.Random(args.seed + epoch))
        for position, batch in enumerate(batches):
            step = epoch * steps_per_epoch + position
            if step < progress["step"]:
                continue
            encoded, targets = encode_batch(tokenizer, [train[i] for i in batch], index, args.max_length)
            loss = model(**encoded, labels=targets).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            progress["losses"].append(round(loss.item(), 4))
            progress["step"] = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{sum(progress['losses'][-50:]) / len(progress['losses'][-50:]):.3f}")
            if progress["step"] % args.checkpoint_every == 0 and progress["step"] < total:
                progress["seconds"] = time.perf_counter() - started
                save_checkpoint(checkpoint, model, optimizer, scheduler, progress)
    bar.close()
    progress["seconds"] = time.perf_counter() - started
    model.eval()
    args.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.output))
    tokenizer.save_pretrained(str(args.output))
    (args.output / "fine_tune.json").write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "seconds": progress["seconds"], "steps": total,
        "sentences": len(train), "labels": labels, "settings": settings, "torch": torch.__version__,
        "mean_loss_last_100": sum(progress["losses"][-100:]) / max(1, len(progress["losses"][-100:])),
    }, indent=1) + "\n")
    shutil.rmtree(checkpoint, ignore_errors=True)
    print(f"saved {args.output} after {progress['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
