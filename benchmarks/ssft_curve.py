"""TOKEE's accuracy against its FLOPs speed-up, before and after self-sampling fine-tuning.

Sweeps thresholds x windows on a labelled file (CoNLL-2003 dev by default) for each model,
keeps the frontier, and reads F1 at 2x and 3x FLOPs speed-up. Writes benchmarks/ssft_curve.json
and .md. Usage:
  python benchmarks/ssft_curve.py --model before=runs/ner/model --model after=runs/ner-ssft/model
  python benchmarks/ssft_curve.py --report-only --note "how the models were trained"  # re-render the .md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from seqexit.bundle import load_model
from seqexit.data import read_conll
from seqexit.evaluation import evaluate_exits, frontier, score_at_speedup, sweep
from seqexit.model import MultiExitTagger

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
WINDOWS = (0, 1, 2)
TARGETS = (1.5, 2.0, 2.5, 3.0)


def curve(model: MultiExitTagger, sentences, mode: str) -> dict:
    windows = WINDOWS if mode == "tokee" else (0,)  # a sentence's largest window value is its largest value
    scores = sweep(model, sentences, mode=mode, thresholds=THRESHOLDS, windows=windows, progress=True)
    return {
        "points": [{"threshold": s.policy.threshold, "window": s.policy.window, "f1": round(s.score, 2),
                    "flops_speedup": round(s.flops_speedup, 3), "mean_exit_layer": round(s.mean_exit_layer, 3)}
                   for s in scores],
        "frontier": [[round(s.flops_speedup, 3), round(s.score, 2), str(s.policy)] for s in frontier(scores)],
        "f1_at": {str(t): (None if (v := score_at_speedup(scores, t)) is None else round(v, 2)) for t in TARGETS},
    }


def report(results: dict) -> str:
    names = list(results["models"])
    lines = [
        "# TOKEE before and after self-sampling fine-tuning", "",
        f"Data: {results['data']} ({results['sentences']} sentences). Command: `{results['command']}`", "",
        *[f"{note}\n" for note in results.get("notes", [])],
        f"Sweep: thresholds {', '.join(map(str, THRESHOLDS))} x windows {', '.join(map(str, WINDOWS))}; "
        "F1 at a speed-up is read off the frontier (linear between its points).", "",
        "| model | full depth F1 | " + " | ".join(f"TOKEE F1 @ {t}x" for t in TARGETS) + " | "
        + " | ".join(f"SENTEE F1 @ {t}x" for t in TARGETS) + " |",
        "|---|---|" + "---|" * 2 * len(TARGETS),
    ]
    for name in names:
        m = results["models"][name]
        cells = [m["full_depth"]] + [m["tokee"]["f1_at"][str(t)] for t in TARGETS] + [m["sentee"]["f1_at"][str(t)] for t in TARGETS]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    lines += ["", "Per-exit F1 (static exits): "]
    for name in names:
        lines.append(f"- {name}: " + " / ".join(f"{s:.2f}" for s in results["models"][name]["exits"]))
    for name in names:
        lines += ["", f"## {name}: TOKEE frontier (FLOPs speed-up, F1, setting)", ""]
        lines += [f"- x{x:.2f}: {f:.2f} ({what})" for x, f, what in results["models"][name]["tokee"]["frontier"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="name=model_folder (repeatable)")
    parser.add_argument("--note", action="append", default=[], help="a line for the report (repeatable)")
    parser.add_argument("--report-only", action="store_true", help="re-render the .md from the .json, with --note lines")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/conll2003/eng.testa"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "ssft_curve")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads(args.output.with_suffix(".json").read_text())
        results["notes"] = results.get("notes", []) + args.note
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        args.output.with_suffix(".md").write_text(report(results))
        return
    if not args.model:
        parser.error("give at least one --model name=folder")
    torch.set_num_threads(args.threads)
    sentences = read_conll(args.data)
    results = {"data": str(args.data), "sentences": len(sentences), "command": "python " + " ".join(sys.argv),
               "environment": {"machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__},
               "notes": args.note, "models": {}}
    for spec in args.model:
        name, folder = spec.split("=", 1)
        model = load_model(folder)
        exits = [round(s.score, 2) for s in evaluate_exits(model, sentences)]
        results["models"][name] = {"folder": folder, "exits": exits, "full_depth": exits[-1],
                                   "tokee": curve(model, sentences, "tokee"), "sentee": curve(model, sentences, "sentee")}
        print(name, results["models"][name]["full_depth"], results["models"][name]["tokee"]["f1_at"], flush=True)
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
