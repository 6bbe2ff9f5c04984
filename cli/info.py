"""`seqexit info`: what a model folder holds: task, labels, backbone, size, how it was trained and its presets."""

from __future__ import annotations

import typer

from .calibrate import preset_table
from .errors import friendly
from .json_output import print_json


@friendly
def info(
    model: str = typer.Argument(..., help="Model folder or a shipped model's name."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a model: task, labels, span scheme, backbone, layers, parameters, how it was
    trained (recipe, stages, dev scores: training.json), and the
    presets stored by `seqexit calibrate` (float and int8) with the trade-offs they were measured at.

    Example: seqexit info runs/conll/model --json
    """
    from seqexit.bundle import ModelBundle
    from seqexit.cascade import read_first_stage
    from seqexit.training.record import describe as describe_training

    bundle = ModelBundle.find(model)
    model, tagger = bundle.folder, bundle.load()
    presets, int8_presets = bundle.presets(), bundle.presets("int8")
    config = tagger.config
    model_type = config.backbone_config.get("model_type")
    hidden_size = tagger.adapter.hidden_size
    parameters = sum(p.numel() for p in tagger.parameters())
    heads = [name for name, present in (("learned", tagger.learned_exits), ("signals", tagger.halting_signals)) if present]
    first_stage = read_first_stage(model)
    if json_output:
        print_json({
            "path": str(model), "task": config.task, "labels": list(config.labels), "scheme": config.scheme,
            "backbone": config.backbone, "model_type": model_type, "layers": tagger.num_layers,
            "hidden_size": hidden_size, "parameters": parameters, "casing": config.casing,
            "exit_context": [head.context for head in tagger.exits],
            "exits": [head.shape.to_dict() for head in tagger.exits], "criterion_heads": heads,
            "first_stage": str(first_stage) if first_stage else None,
            "presets": {name: p.to_dict() for name, p in presets.items()},
            "int8_presets": {name: p.to_dict() for name, p in int8_presets.items()},
            "training": tagger.training_record,
        })
        return
    typer.echo(f"model       {model}")
    typer.echo(f"task        {config.task}" + (f" (spans, {config.scheme})" if config.scheme else " (per-word tags)"))
    typer.echo(f"labels      {len(config.labels)}: {' '.join(config.labels)}")
    typer.echo(f"backbone    {config.backbone or '?'} ({model_type}, hidden size {hidden_size})")
    typer.echo(f"layers      {tagger.num_layers} (one exit after each)")
    shapes = [head.shape for head in tagger.exits]
    if any(not shape.plain for shape in shapes):
        typer.echo("exits       " + " | ".join(f"{layer}: {shape.describe()}" for layer, shape in enumerate(shapes, 1)))
    typer.echo(f"heads       {', '.join(heads) or 'none'} (of the trained exit criteria: learned, signals)")
    typer.echo(f"casing      {'learned casing features' if config.casing else 'none (the backbone as it is)'}")
    typer.echo(f"parameters  {parameters:,}")
    if first_stage is not None:
        typer.echo(f"cascade     first stage {first_stage} (--mode cascade; `seqexit cascade` pairs)")
    if tagger.training_record:
        lines = describe_training(tagger.training_record)
        typer.echo(f"training    {lines[0]}")
        for line in lines[1:]:
            typer.echo(f"            {line}")
    if not presets and not int8_presets:
        typer.echo("no presets: run seqexit calibrate")
        return
    for title, section in (("presets", presets), ("int8 presets (--quantize int8; drop against float full depth)", int8_presets)):
        if not section:
            continue
        sources = sorted({p.data for p in section.values() if p.data})
        typer.echo(title + (f" (measured on {', '.join(sources)})" if sources else "") + ":")
        for line in preset_table(section.values()):
            typer.echo("  " + line)
