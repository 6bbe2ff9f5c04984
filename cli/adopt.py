"""`seqexit adopt`: make a fine-tuned Hugging Face token classifier a seqexit model, without labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from seqexit.data.formats import FORMATS

from .errors import ON_BAD_LINE, UsageError, friendly
from .learn_exits import read_word_lists


@friendly
def adopt(
    folder: Path = typer.Argument(..., help="A local Hugging Face token-classification folder (config.json with "
                                            "id2label, model.safetensors, tokenizer files)."),
    output: Path = typer.Option(..., "--output", "-o", help="New folder for the seqexit model."),
    unlabelled: Path = typer.Option(..., "--unlabelled", help="Text the lower exits learn from, labelled or not "
                                                              "(labels are ignored): raw text, CoNLL, CoNLL-U or JSONL."),
    task: str = typer.Option("auto", help="ner, chunk or pos; auto: ner for span labels, pos for per-word tags."),
    context: int = typer.Option(1, min=0, max=8, help="Words each lower exit reads on each side of a word (0: the word alone)."),
    epochs: int = typer.Option(2, min=1, help="Passes over the text."),
    lr: float = typer.Option(1e-3, min=0.0, help="Peak learning rate of the lower exits (one-cycle schedule)."),
    batch_size: int = typer.Option(32, min=1),
    limit: int = typer.Option(0, min=0, help="Use the first N sentences only (0: all)."),
    input_format: str = typer.Option("auto", help=f"Input: {', '.join(FORMATS)}; auto: from the extension."),
    on_bad_line: str = ON_BAD_LINE,
) -> None:
    """Adopt FOLDER: its encoder, tokenizer and classifier become a seqexit model whose full
    depth gives FOLDER's own labels (each word read at its first piece), and an exit after every
    layer below the last is trained to give the same labels, by distillation from the last
    exit on --unlabelled text (no gold labels; the encoder is not changed). Then calibrate it:
    with a labelled dev file, or with --against-full-depth on any text.

    The training state is kept in OUT.checkpoint beside OUT while it runs: after an interrupt,
    the same command resumes from it.

    Example: seqexit adopt my-bert-ner -o my-bert-ner-exits --unlabelled news.txt
    """
    from seqexit.adopt import adopt as adopt_model
    from seqexit.adopt import read_token_classifier
    from seqexit.bundle import save_model

    if task not in ("auto", "ner", "chunk", "pos"):
        raise UsageError(f"--task must be auto, ner, chunk or pos, not {task!r}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(f"{output} exists and is not an empty folder")
    source = read_token_classifier(folder)  # a bad folder fails here, before the text is read
    typer.echo(f"{folder}: {len(source.labels)} labels, " + (f"spans ({source.scheme})" if source.scheme else "per-word tags"))
    sentences = read_word_lists(unlabelled, input_format, limit, on_bad_line)
    checkpoint = output.with_name(output.name + ".checkpoint")  # beside OUT: the same command resumes from it
    if checkpoint.exists():
        typer.echo(f"resuming from {checkpoint}")
    model = adopt_model(folder, sentences, task=None if task == "auto" else task, context=context, epochs=epochs,
                        learning_rate=lr, batch_size=batch_size, progress=True, checkpoint=checkpoint)
    save_model(model, output)  # written beside OUT and renamed into place: nothing half-written
    shutil.rmtree(checkpoint, ignore_errors=True)
    typer.echo(f"seqexit model in {output} ({model.num_layers} layers); calibrate it: seqexit calibrate {output} DEV "
               f"(or any text with --against-full-depth)")
