"""`seqexit tag`: label the words of files (or stdin) and write CoNLL, JSONL or a spaCy DocBin."""

from __future__ import annotations

import itertools
from pathlib import Path

import typer
from tqdm.auto import tqdm

from seqexit.data import SCHEMES
from seqexit.data.formats import FORMATS, guess_format, iter_words
from seqexit.output import OUTPUT_FORMATS, open_writer, output_format_for

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly
from .policy import (CRITERION, EXIT_LAYER, MIN_LAYER, MODE, PATIENCE, PRESET, QUANTIZE, RUNTIME, THRESHOLD, WINDOW,
                     THEN, build_policy, pick_device, pick_quantize, pick_runtime_option)


@friendly
def tag(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Raw text (.txt), CoNLL, CoNLL-U or JSONL files; - for stdin."),
    model: str = typer.Option(..., "--model", "-m", help="Model folder or a shipped model's name."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file (default: stdout)."),
    format: str = typer.Option("auto", "--format", "--output-format", "-f",
                               help=f"Output: {', '.join(OUTPUT_FORMATS)}; auto: from -o's extension (.jsonl, .spacy), else conll."),
    input_format: str = typer.Option("auto", help=f"Input: {', '.join(FORMATS)}; auto: from the extension (.txt and stdin: text)."),
    on_bad_line: str = ON_BAD_LINE,
    scheme: str = typer.Option("iob2", help=f"Span scheme to write: {', '.join(SCHEMES)}."),
    keep_columns: bool = typer.Option(False, "--keep-columns", help="CoNLL out from CoNLL or CoNLL-U in: every input "
                                      "line as it is, with the prediction appended (CoNLL: a last column, `word ... gold "
                                      "pred` as conlleval reads it; -DOCSTART- lines repeat their last column; CoNLL-U: "
                                      "SeqexitLabel=PRED in MISC). Raw text and JSONL input are refused."),
    preset: str | None = PRESET,
    quantize: str = QUANTIZE,
    runtime: str = RUNTIME,
    mode: str = MODE,
    threshold: str = THRESHOLD,
    window: int = WINDOW,
    min_layer: int = MIN_LAYER,
    exit_layer: int | None = EXIT_LAYER,
    criterion: str = CRITERION,
    patience: int | None = PATIENCE,
    then: str | None = THEN,
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    progress: bool = typer.Option(True, help="Progress bar on stderr (when it is a terminal)."),
    engine: str = typer.Option("local", help="local: this process; ray: Ray Data workers (pip install \"seqexit[ray]\")."),
    workers: int = typer.Option(2, min=1, help="--engine ray: worker actors, one model each."),
    address: str | None = typer.Option(None, help="--engine ray: join this cluster (auto, ray://host:port) instead of "
                                       "starting a local Ray with this machine's cores."),
) -> None:
    """Tag INPUT files in order; every input word gets exactly one label, in input order.

    Large files stream through in batches. Examples:

      seqexit tag data/samples/news.txt -m en-ner -f pretty

      cat news.txt | seqexit tag - -m MODEL --preset fast -f jsonl > news.jsonl

      seqexit tag news.txt -m en-ner --preset balanced --quantize int8

      seqexit tag eng.testb -m en-ner --keep-columns -o out.conll   # then: conlleval < out.conll
    """
    from seqexit import open_tagger
    from seqexit.bundle import ModelBundle
    from seqexit.distributed import require_ray, start_ray, tag_on_ray

    if scheme not in SCHEMES:
        raise UsageError(f"--scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    if input_format not in ("auto", *FORMATS):
        raise UsageError(f"--input-format must be auto or one of {', '.join(FORMATS)}, not {input_format!r}")
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read once only")
    for name in inputs:
        if name != "-" and not Path(name).is_file():
            raise UsageError(f"{name}: no such file")
    if keep_columns:
        if (format if format != "auto" else output_format_for(output)) != "conll":
            raise UsageError("--keep-columns writes CoNLL: leave -f/--format at conll (or auto with a CoNLL -o)")
        for name in inputs:
            read_as = input_format if input_format != "auto" else guess_format(name, labelled=False)
            if read_as not in ("conll", "conllu"):
                raise UsageError(f"--keep-columns needs CoNLL or CoNLL-U input: {name} is read as {read_as}, which has "
                                 "no columns to keep" + (" (give --input-format conll or conllu)" if name == "-" else ""))
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine must be local or ray, not {engine!r}")
    if engine == "ray":
        if device != "cpu":
            raise UsageError("--engine ray runs on the workers' CPUs: leave --device at cpu")
        try:
            require_ray()
        except ImportError as err:
            raise UsageError(str(err)) from None
    quantized = pick_quantize(quantize, device)
    runtime = pick_runtime_option(runtime, device)
    bundle = ModelBundle.find(model)
    model_dir, config = bundle.folder, bundle.config
    policy = build_policy(mode, threshold, window, min_layer, exit_layer, preset=preset, model_dir=model_dir,
                          quantize=quantized, criterion=criterion, patience=patience, then=then)
    bad = bad_lines(on_bad_line)  # a bad line's whole sentence is skipped (and reported): no word goes untagged
    sentences = itertools.chain.from_iterable(iter_words(name, input_format, bad_lines=bad, keep_lines=keep_columns)
                                              for name in inputs)
    if engine == "ray":
        sentences = list(sentences)  # every input read (and checked) before any work is scheduled
        start_ray(address)
        results = tag_on_ray(sentences, str(model_dir), policy=policy, workers=workers, batch_size=batch_size,
                             quantize=quantized, runtime=runtime)
    else:
        tagger = open_tagger(model_dir, device=pick_device(device), policy=policy, batch_size=batch_size, quantize=quantized,
                             runtime=runtime)
        results = tagger.tag_stream(sentences)
    with open_writer(output, format, scheme=scheme if config.scheme else None, task=config.task,
                     keep_columns=keep_columns) as writer:
        bar = tqdm(desc="tagging", unit=" sentences", disable=None if progress else True, leave=False)
        for tagged in results:
            writer.write(tagged)
            bar.update()
        bar.close()
    bad.finish()
