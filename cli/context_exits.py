"""`seqexit context-exits`: re-fit a model's lower exits to read more than one state (neighbours, past, future)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from seqexit.data.formats import FORMATS

from .errors import ON_BAD_LINE, UsageError, friendly
from .learn_exits import read_word_lists


@friendly
def context_exits(
    model: str = typer.Argument(..., help="Model folder or shipped name."),
    data: Path = typer.Argument(..., help="Text to learn from, labelled or not (labels are ignored): raw text, CoNLL, "
                                          "CoNLL-U or JSONL."),
    output: Path = typer.Option(..., "--output", "-o", help="New folder for the model with context exits."),
    context: int = typer.Option(1, min=0, max=8, help="Words read on each side of a word by every exit below the last."),
    past: bool = typer.Option(False, "--past/--no-past", help="Also read the mean of the word's states at the layers "
                                                              "below (Global Past-Future early exit's past)."),
    future: int = typer.Option(0, min=0, max=4096, help="Also read an imitation of the deeper layers' states, from a "
                                                         "perceptron of this many units trained to match them (0: none)."),
    hidden: int = typer.Option(0, min=0, max=4096, help="Give every exit below the last a hidden layer of this many "
                                                         "units beside its linear one (0: none)."),
    input_format: str = typer.Option("auto", help=f"Input: {', '.join(FORMATS)}; auto: from the extension."),
    epochs: int = typer.Option(4, min=1),
    lr: float = typer.Option(1e-3, min=0.0, help="Peak learning rate of the exits (one-cycle schedule)."),
    batch_size: int = typer.Option(32, min=1),
    limit: int = typer.Option(0, min=0, help="Use the first N sentences only (0: all)."),
    on_bad_line: str = ON_BAD_LINE,
) -> None:
    """Re-fit every exit below the last to read the states of the --context words on each side
    of a word as well as its own (with --past, --future and --hidden: more), by distillation from
    the last exit on DATA (no gold needed). The encoder and the last exit do not change: full
    depth gives the same labels.

    The old exits' temperatures, presets and trained halting heads do not fit the new exits and
    are not copied: run `seqexit calibrate` (and `seqexit learn-exits`) on the new folder.

    Example: seqexit context-exits en-ner ../shared/data/conll2003/eng.train -o my-ner
    """
    from seqexit.bundle import ModelBundle, compact_base, save_model
    from seqexit.training.context_exits import train_context_exits

    if not (context or past or future or hidden):
        raise UsageError("nothing to learn: give --context 1 or more, --past, --future or --hidden")
    if not data.is_file():
        raise UsageError(f"{data}: no such file")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(f"{output} exists and is not an empty folder")
    source = ModelBundle.find(model)
    tagger = source.load()
    sentences = read_word_lists(data, input_format, limit, on_bad_line)
    checkpoint = output.with_name(output.name + ".checkpoint")  # beside OUT: the same command resumes from it
    if checkpoint.exists():
        typer.echo(f"resuming from {checkpoint}")
    result = train_context_exits(tagger, sentences, context=context, past=past, future=future, hidden=hidden,
                                 epochs=epochs, learning_rate=lr, batch_size=batch_size, progress=True,
                                 checkpoint=checkpoint)
    save_model(tagger, output, compact_against=compact_base(source.folder))  # compact stays compact
    shutil.rmtree(checkpoint, ignore_errors=True)
    typer.echo("loss per epoch: " + " ".join(f"{loss:.4f}" for loss in result.epoch_losses))
    typer.echo("words labelled as the last exit labels them, exits 1..L-1, before -> after: "
               + " / ".join(f"{100 * a:.1f}->{100 * b:.1f}%" for a, b in zip(result.agreement_before, result.agreement_after)))
    typer.echo(f"model with exits reading {result.shapes[0].describe()} in {output}; calibrate it: "
               f"seqexit calibrate {output} DEV")
