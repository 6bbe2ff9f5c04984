"""The record of a shipped model: test score of every exit (shipped compact vs uncompacted) and of
every preset, the presets' FLOPs and wall-clock speed-ups, and how the model was trained.

Writes data/models/NAME/record.json and MODEL.md, and merges NAME into
benchmarks/shipped_models.{json,md}. The test slice (the first 300 sentences of the test file)
is what tests/test_shipped_models.py checks the installed model against.
Usage:
  python benchmarks/shipped_models.py --name en-ner --full runs/en-ner/model --run runs/en-ner \
      --train ../shared/data/conll2003/eng.train --dev ../shared/data/conll2003/eng.testa \
      --test ../shared/data/conll2003/eng.testb --command "seqexit train ..."
  python benchmarks/shipped_models.py --name en-ner --retime   # after an engine change, on this machine
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import statistics
import sys
from pathlib import Path

import torch

from seqexit.bundle import find_model, load_model, load_presets
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.evaluation.exits import evaluate_policy
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import MultiExitTagger
from seqexit.runtime.select import cpu_name

from timing import interleaved_seconds, paired_speedup

HERE = Path(__file__).resolve().parent
SLICE = 300  # sentences of the test file that the shipped-model tests score


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_record(run: Path) -> list[dict]:
    """Each stage of the run: from the final model's training.json (what `seqexit train` records;
    `run` may be that model folder itself), else from each stage's train_result.json under the
    training output folder."""
    recorded = run / "training.json" if (run / "training.json").is_file() else run / "model" / "training.json"
    if recorded.is_file():
        record = json.loads(recorded.read_text())
        return [{k: v for k, v in stage.items() if k != "best_dev"} | {"recipe": record.get("recipe")}
                for stage in record["stages"]]
    stages = []
    for name, folder in (("stage 1: ordinary fine-tune", "joint/encoder"), ("stage 1: lower exits", "joint"),
                         ("stage 2: SSFT", "ssft")):
        path = run / folder / "train_result.json"
        if path.is_file():
            result = json.loads(path.read_text())
            stages.append({"stage": name, "config": result["config"], "dev_history": result["history"],
                           "best_epoch": result["best_epoch"], "minutes": round(result["seconds"] / 60, 1)})
    return stages


def wall_speedups(model: MultiExitTagger, words: list[list[str]], policies: dict[str, ExitPolicy], rounds: int) -> dict:
    """Median over interleaved rounds of full depth's time / each policy's time, batch 32."""
    seconds = interleaved_seconds(
        {name: (lambda p=policy: run_policy(model, words, p, batch_size=32)) for name, policy in policies.items()}, rounds,
        warmups={name: (lambda p=policy: run_policy(model, words[:256], p, batch_size=32)) for name, policy in policies.items()})
    n_words = sum(map(len, words))
    return {name: {"wall_speedup": paired_speedup(seconds["full depth"], times),
                   "words_per_second": n_words / statistics.median(times)} for name, times in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="shipped model name (data/models/NAME)")
    parser.add_argument("--full", type=Path, default=None, help="the uncompacted trained model folder (if kept)")
    parser.add_argument("--run", type=Path, default=None, help="the seqexit train output folder (default: the "
                                                                 "shipped folder's own training.json)")
    parser.add_argument("--train", type=Path)
    parser.add_argument("--dev", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--command", action="append", help="a command that made the model (repeatable)")
    parser.add_argument("--note", action="append", default=[], help="a line for MODEL.md (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--retime", action="store_true",
                        help="measure every score and speed-up again on this machine (after an engine change); the data, "
                             "commands, notes, training record and uncompacted exit scores are kept from record.json")
    args = parser.parse_args()
    kept = json.loads((find_model(args.name) / "record.json").read_text()) if args.retime else None
    if kept is not None:
        args.train, args.dev, args.test = (Path(kept["data"][split]["file"]) for split in ("train", "dev", "test"))
        args.command, args.note = kept["commands"], args.note or kept["notes"]
    elif not (args.train and args.dev and args.test and args.command):
        parser.error("--train, --dev, --test and --command are required (or --retime a model that has a record.json)")
    torch.set_num_threads(args.threads)

    folder = find_model(args.name)
    shipped, full = load_model(folder), (load_model(args.full) if args.full else None)
    test = read_file(args.test, span_tags=shipped.config.scheme is not None)
    print(f"{args.name}: {len(test)} test sentences", flush=True)
    exits_shipped = evaluate_exits(shipped, test)
    exits_full = evaluate_exits(full, test) if full is not None else [None] * len(exits_shipped)
    uncompacted = [f.score if f else None for f in exits_full]
    if kept is not None and full is None:
        uncompacted = [row["uncompacted"] for row in kept["test"]["exits"]]
    metric = exits_shipped[-1].metric
    presets = load_presets(folder)
    policies = {"full depth": ExitPolicy(), **{name: p.policy for name, p in presets.items()}}
    scores = {name: evaluate_policy(shipped, test, policy) for name, policy in policies.items()}
    speed = wall_speedups(shipped, [s.words for s in test], policies, args.rounds)
    slice_scores = {name: evaluate_policy(shipped, test[:SLICE], policy).score for name, policy in policies.items()}
    files = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    record = {
        "name": args.name, "task": shipped.config.task, "metric": metric, "labels": shipped.labels,
        "casing_features": shipped.config.casing, "backbone": json.loads((folder / "compact.json").read_text())["base"],
        "size_bytes": files,
        "data": {split: {"file": str(path), "sha256": sha256(path)} for split, path in
                 (("train", args.train), ("dev", args.dev), ("test", args.test))},
        "commands": args.command, "notes": args.note,
        "training": kept["training"] if kept is not None else training_record(args.run or folder),
        "exit_context": [head.context for head in shipped.exits],
        "test": {
            "exits": [{"layer": s.layer, "shipped": s.score, "uncompacted": u} for s, u in zip(exits_shipped, uncompacted)],
            "compaction_cost_full_depth": uncompacted[-1] - exits_shipped[-1].score if uncompacted[-1] is not None else None,
            "policies": {name: {"policy": str(policies[name]), "score": s.score, "flops_speedup": s.flops_speedup,
                                "mean_exit_layer": s.mean_exit_layer, **speed[name]} for name, s in scores.items()},
        },
        "test_slice": {"sentences": SLICE, "scores": slice_scores},
        "presets_calibrated_on": sorted({p.data for p in presets.values() if p.data}),
        "environment": {"machine": f"{platform.machine()} CPU", "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
                        "python": platform.python_version(), "rounds": args.rounds},
        "benchmark_command": kept["benchmark_command"] if kept is not None else "python " + shlex.join(sys.argv),
    }
    if kept is not None:
        record["retime_command"] = "python " + shlex.join(sys.argv)
    (folder / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / "MODEL.md").write_text(model_card(record))
    merged_path = HERE / "shipped_models.json"
    merged = json.loads(merged_path.read_text()) if merged_path.is_file() else {}
    merged[args.name] = record
    merged_path.write_text(json.dumps(merged, indent=1) + "\n")
    (HERE / "shipped_models.md").write_text("\n".join(model_card(r, level=2) for r in merged.values()))
    print(model_card(record))


def model_card(record: dict, level: int = 1) -> str:
    h = "#" * level
    test = record["test"]
    metric = "span F1" if record["metric"] == "f1" else "accuracy (%)"
    data = record["data"]
    lines = [f"{h} {record['name']}: {record['task'].upper()} on {Path(data['train']['file']).parent.name}", "",
             f"Backbone `{record['backbone']}` (installed package), casing features: "
             f"{'yes' if record['casing_features'] else 'no'}; files in this folder: {record['size_bytes'] / 1e6:.1f} MB "
             "(int8 per-row deltas against the backbone, see `seqexit compact`).", "",
             *[f"{note}\n" for note in record["notes"]],
             f"{h}# Test {metric}, every exit", "",
             "| exit | shipped (compact) | uncompacted | cost |", "|---|---|---|---|"]
    for row in test["exits"]:
        if row["uncompacted"] is None:
            lines.append(f"| {row['layer']} | {row['shipped']:.2f} | - | - |")
        else:
            lines.append(f"| {row['layer']} | {row['shipped']:.2f} | {row['uncompacted']:.2f} | "
                         f"{row['uncompacted'] - row['shipped']:+.2f} |")
    lines += ["", f"{h}# Test {metric}, every preset (batch 32, {record['environment']['threads']} CPU threads, "
              f"median of {record['environment']['rounds']} interleaved rounds)", "",
              "| preset | policy | score | drop | FLOPs speed-up | wall-clock speed-up | mean exit layer | words/s |",
              "|---|---|---|---|---|---|---|---|"]
    full = test["policies"]["full depth"]["score"]
    for name, row in test["policies"].items():
        lines.append(f"| {name} | `{row['policy']}` | {row['score']:.2f} | {full - row['score']:.2f} | {row['flops_speedup']:.2f}x | "
                     f"{row['wall_speedup']:.2f}x | {row['mean_exit_layer']:.2f} | {row['words_per_second']:,.0f} |")
    lines += ["", f"Presets calibrated on: {', '.join(record['presets_calibrated_on']) or '-'} (the drop bound is "
              "measured there; the test drop above is what it turned out to be).", "",
              f"{h}# How it was made", "", "```bash", *record["commands"], "```", ""]
    for stage in record["training"]:
        config = stage["config"]
        dev = ", ".join(f"{h_['dev']:.2f}" for h_ in stage["dev_history"])
        settings = ", ".join(f"{name} {config[key]:g}" if isinstance(config[key], float) else f"{name} {config[key]}"
                             for name, key in (("lr", "learning_rate"), ("batch", "batch_size"), ("seed", "seed"),
                                               ("temperature", "temperature")) if key in config)
        lines.append(f"- {stage['stage']}: {config['epochs']} epochs, {settings}; dev per epoch {dev} ({stage['dev_history'][0]['metric']}); "
                     f"best epoch {stage['best_epoch']}; {stage['minutes']} min")
    lines += ["", "Data (SHA-256):", ""]
    lines += [f"- {split}: `{d['file']}` `{d['sha256']}`" for split, d in data.items()]
    env = record["environment"]
    lines += ["", f"Measured by `benchmarks/shipped_models.py` (the full command is in record.json) on {env.get('cpu') or env['machine']}, "
              f"{env['threads']} threads, torch {env['torch']}, Python {env['python']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
