"""`seqexit learn-exits`: train the heads of a trained exit criterion: "learned" (BERxiT) or
"signals" (`seqexit.exits.signals`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import typer

from seqexit.data.formats import FORMATS, iter_words

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly


def read_word_lists(data: Path, input_format: str, limit: int, on_bad_line: str, quiet: bool = False) -> list[list[str]]:
    """The word lists of DATA (labels ignored) for the commands that fit heads on a frozen model:
    checked options, bad lines handled as asked, at most `limit` sentences (0: all), never none."""
    if input_format not in ("auto", *FORMATS):
        raise UsageError(f"--input-format must be auto or one of {', '.join(FORMATS)}, not {input_format!r}")
    if not data.is_file():
        raise UsageError(f"{data}: no such file")
    bad = bad_lines(on_bad_line)
    sentences = [s.words for s in itertools.islice(iter_words(data, input_format, bad_lines=bad), limit or None) if s.words]
    bad.finish()
    if not sentences:
        raise UsageError(f"{data} holds no sentences")
    if not quiet:
        typer.echo(f"{len(sentences)} sentences from {data}")
    return sentences


@friendly
def learn_exits(
    model: Path = typer.Argument(..., help="Model folder: the heads are written there (learned_exits.safetensors or "
                                           "halting_signals.safetensors)."),
    data: Path = typer.Argument(..., help="Text to learn from, labelled or not: raw text, CoNLL, CoNLL-U or JSONL."),
    criterion: str = typer.Option("learned", help="learned: a head on each layer's hidden state (BERxiT); signals: a "
                                                  "small perceptron on several exits' doubts, labels and neighbours."),
    input_format: str = typer.Option("auto", help=f"Input: {', '.join(FORMATS)}; auto: from the extension."),
    epochs: int = typer.Option(0, min=0, help="Passes over DATA (0: 2 for learned, 20 for signals)."),
    lr: float = typer.Option(0.0, min=0.0, help="Learning rate of the heads, the model stays frozen (0: 1e-3 for "
                                               "learned, 3e-3 for signals)."),
    batch_size: int = typer.Option(32, min=1),
    limit: int = typer.Option(0, min=0, help="Use the first N sentences only (0: all)."),
    on_bad_line: str = ON_BAD_LINE,
) -> None:
    """Train the heads of `--criterion learned` (BERxiT) or `--criterion signals` on DATA; the
    model stays frozen.

    For every layer below the last a head learns whether that exit's label already equals the
    last exit's (no gold needed): from the word's hidden state there (learned) or from its
    signals (signals: this and the exit below's entropy and top probability, the label and how
    many exits in a row gave it, the neighbours' entropy and the word before's label). The
    criterion then halts a word when that probability is above --threshold.

    Example: seqexit learn-exits runs/ner/model ../shared/data/conll2003/eng.train --criterion signals
    """
    from seqexit.bundle import load_model, save_halting_signals, save_learned_exits
    from seqexit.training.halting_signals import train_halting_signals
    from seqexit.training.learned_exits import train_learned_exits

    if criterion not in ("learned", "signals"):
        raise UsageError(f"--criterion must be learned or signals, not {criterion!r}")
    if not data.is_file():
        raise UsageError(f"{data}: no such file")
    tagger = load_model(model)
    sentences = read_word_lists(data, input_format, limit, on_bad_line)
    if criterion == "signals":
        result = train_halting_signals(tagger, sentences, epochs=epochs or 20, learning_rate=lr or 3e-3,
                                       batch_size=batch_size, progress=True)
        path, example = save_halting_signals(model, result.signals), "--criterion signals --threshold 0.99"
    else:
        result = train_learned_exits(tagger, sentences, epochs=epochs or 2, learning_rate=lr or 1e-3,
                                     batch_size=batch_size, progress=True)
        path, example = save_learned_exits(model, result.heads), "--criterion learned --threshold 0.9"
    typer.echo("loss per epoch: " + " ".join(f"{loss:.4f}" for loss in result.epoch_losses))
    typer.echo("words whose label already equals the last exit's, layers 1..L-1: "
               + " ".join(f"{100 * a:.1f}%" for a in result.agreement))
    typer.echo(f"heads written to {path}; use them with {example}")
