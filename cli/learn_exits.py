"""`seqexit learn-exits`: train the "learned" criterion's exit heads of a model (BERxiT)."""

from __future__ import annotations

import itertools
from pathlib import Path

import typer

from seqexit.data.formats import FORMATS, iter_words

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly


@friendly
def learn_exits(
    model: Path = typer.Argument(..., help="Model folder: learned_exits.safetensors is written there."),
    data: Path = typer.Argument(..., help="Text to learn from, labelled or not: raw text, CoNLL, CoNLL-U or JSONL."),
    input_format: str = typer.Option("auto", help=f"Input: {', '.join(FORMATS)}; auto: from the extension."),
    epochs: int = typer.Option(2, min=1),
    lr: float = typer.Option(1e-3, help="Learning rate of the heads (the model stays frozen)."),
    batch_size: int = typer.Option(32, min=1),
    limit: int = typer.Option(0, min=0, help="Use the first N sentences only (0: all)."),
    on_bad_line: str = ON_BAD_LINE,
) -> None:
    """Train the exit heads of `--criterion learned` (BERxiT) on DATA; the model stays frozen.

    For every layer below the last a head learns, from a word's hidden state there, whether that
    exit's label already equals the last exit's (no gold needed); `--criterion learned` then
    halts a word when that probability is above --threshold.

    Example: seqexit learn-exits runs/ner/model ../shared/data/conll2003/eng.train --limit 5000
    """
    from seqexit.bundle import load_model, save_learned_exits
    from seqexit.training.learned_exits import train_learned_exits

    if input_format not in ("auto", *FORMATS):
        raise UsageError(f"--input-format must be auto or one of {', '.join(FORMATS)}, not {input_format!r}")
    if not data.is_file():
        raise UsageError(f"{data}: no such file")
    tagger = load_model(model)
    bad = bad_lines(on_bad_line)
    sentences = [s.words for s in itertools.islice(iter_words(data, input_format, bad_lines=bad), limit or None) if s.words]
    bad.finish()
    if not sentences:
        raise UsageError(f"{data} holds no sentences")
    typer.echo(f"{len(sentences)} sentences from {data}")
    result = train_learned_exits(tagger, sentences, epochs=epochs, learning_rate=lr, batch_size=batch_size, progress=True)
    path = save_learned_exits(model, result.heads)
    typer.echo("loss per epoch: " + " ".join(f"{loss:.4f}" for loss in result.epoch_losses))
    typer.echo("words whose label already equals the last exit's, layers 1..L-1: "
               + " ".join(f"{100 * a:.1f}%" for a in result.agreement))
    typer.echo(f"exit heads written to {path}; use them with --criterion learned --threshold 0.9")
