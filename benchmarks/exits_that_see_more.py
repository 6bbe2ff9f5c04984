"""Exits that see more: context exits, past/future/hidden-layer exits and the "signals" criterion
against today's exits, under TOKEE.

For each task, models with the same encoder and last exit whose lower exits differ: the linear
exits (`--{task}-base`), the same after `seqexit context-exits` (`--{task}-context`), and any
more (`--{task}-model KIND=PATH`, e.g. hidden=runs/gpf/en-ner-h64). On each, the "signals"
heads are trained on train text in memory (label-free). Each kind x criterion (entropy,
signals) is an ablation variant, swept over its thresholds x windows 0-2 through the real engine
(halted words removed) on test. For each: every exit's score, the frontier, the best FLOPs
speed-up within 0.1 and 0.3 points of full depth and its share of the oracle's saving, the
Difficulty Inversion Score on dev at the setting nearest 2x FLOPs (word difficulty from the
`--{task}-reference` model's exits, by default the linear one), and the wall-clock speed-up at
batch 32 of the fastest setting within 0.3 (rounds interleaved with full depth, median of
paired ratios).

--merge keeps the kinds already in exits_that_see_more.json that this run does not measure (their
wall-clock ratios were measured against full depth in their own run).

Writes benchmarks/exits_that_see_more.{json,md}, see_more_{ner,pos}.png and rebuilds RESULTS.md.
Usage: python benchmarks/exits_that_see_more.py --ner-context runs/ctx/en-ner [--pos-context ...]
       python benchmarks/exits_that_see_more.py --merge --ner-model hidden=runs/gpf/en-ner-h64 --ner-reference OLD
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from functools import partial
from pathlib import Path

import torch

from run_all import DATA, HERE, TASKS, write_section  # benchmarks/ is first on sys.path
from seqexit.bundle import find_model, load_model
from seqexit.data.formats import read_file
from seqexit.evaluation import PolicyScore, evaluate_exits, evaluate_policy, oracle_bound
from seqexit.evaluation.difficulty import difficulty_inversion_score, word_difficulty
from seqexit.evaluation.sweep import frontier, score_at_speedup
from seqexit.exits import ExitPolicy, run_policy
from seqexit.training.halting_signals import train_halting_signals
from timing import interleaved_seconds, paired_speedup

DEV = {"ner": DATA / "conll2003" / "eng.testa", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-dev.conllu"}
TRAIN = {"ner": DATA / "conll2003" / "eng.train", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-train.conllu"}
THRESHOLDS = {
    "entropy": (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
    "signals": (0.9, 0.95, 0.98, 0.99, 0.993, 0.996, 0.998),
}
WINDOWS = (0, 1, 2)
SPEEDUPS = (2.0, 2.5, 3.0, 3.5)
CRITERIA = ("entropy", "signals")
NAMES = {"linear": "linear (today)"}


def sweep_variant(model, test, criterion: str) -> list[dict]:
    rows = []
    for window in WINDOWS:
        for threshold in THRESHOLDS[criterion]:
            policy = ExitPolicy.tokee(threshold, window=window, criterion=criterion)
            result = evaluate_policy(model, test, policy)
            rows.append({"policy": str(policy), "policy_dict": policy.to_dict(), "score": result.score,
                         "flops_speedup": result.flops_speedup, "mean_exit_layer": result.mean_exit_layer,
                         "words_per_layer": result.words_per_layer})
    return rows


def summarise(rows: list[dict], full: float, oracle: float, metric: str) -> dict:
    scores = [PolicyScore(ExitPolicy.from_dict(r["policy_dict"]), r["score"], metric, r["flops_speedup"],
                          r["mean_exit_layer"], [], 0.0) for r in rows]
    within = {drop: max((r for r in rows if full - r["score"] <= drop + 1e-9), key=lambda r: r["flops_speedup"], default=None)
              for drop in (0.1, 0.3)}
    best = within[0.3]["flops_speedup"] if within[0.3] else 1.0
    return {
        "drop_at_flops": {str(s): (None if (v := score_at_speedup(scores, s)) is None else full - v) for s in SPEEDUPS},
        "best_within_0.1": within[0.1], "best_within_0.3": within[0.3],
        "share_of_oracle": (best - 1) / (oracle - 1),
        "frontier": [(s.flops_speedup, s.score) for s in frontier(scores)],
    }


def task_models(task: str, args) -> dict[str, str]:
    """KIND -> model path of this run, in the order given."""
    kinds = {}
    if getattr(args, f"{task}_base"):
        kinds["linear"] = getattr(args, f"{task}_base")
    if getattr(args, f"{task}_context"):
        kinds["context"] = getattr(args, f"{task}_context")
    for entry in getattr(args, f"{task}_model") or []:
        kind, _, path = entry.partition("=")
        kinds[kind] = path
    return kinds


def benchmark_task(task: str, args, kept: dict | None) -> dict:
    name, path, data_name, metric = TASKS[task]
    spans = task != "pos"
    test = read_file(path, span_tags=spans)[: args.limit or None]
    dev = read_file(DEV[task], span_tags=spans)[: args.limit or None]
    train_words = [s.words for s in read_file(TRAIN[task], span_tags=spans)[: args.learn_sentences or None]]
    models = {kind: load_model(find_model(folder)) for kind, folder in task_models(task, args).items()}
    result = {"task": task, "data": data_name, "metric": metric, "sentences": len(test), "models": {}, "variants": {},
              "seconds": {}}
    for kind, model in models.items():
        print(f"{task} {kind}: signals heads on {len(train_words)} train sentences", flush=True)
        signals = train_halting_signals(model, train_words)
        model.halting_signals = signals.signals
        full = evaluate_policy(model, test, ExitPolicy())
        oracle = oracle_bound(model, [s.words for s in test])
        result["models"][kind] = {
            "context": [head.context for head in model.exits], "exits": [head.shape.describe() for head in model.exits],
            "exit_flops_per_word": [head.flops_per_word() for head in model.exits], "full_score": full.score,
            "exit_scores": [e.score for e in evaluate_exits(model, test)],
            "oracle_flops_speedup": oracle.flops_speedup, "signals_agreement": signals.agreement,
        }
    reference = getattr(args, f"{task}_reference")
    reference_model = load_model(find_model(reference)) if reference else models.get("linear", next(iter(models.values())))
    difficulty = word_difficulty(reference_model, dev)  # the same encoder: the reference words
    for kind, model in models.items():
        for criterion in CRITERIA:
            info = result["models"][kind]
            print(f"{task}: {kind} exits, {criterion}", flush=True)
            rows = sweep_variant(model, test, criterion)
            summary = summarise(rows, info["full_score"], info["oracle_flops_speedup"], metric)
            nearest = min(rows, key=lambda r: abs(r["flops_speedup"] - 2.0))
            run = run_policy(model, [s.words for s in dev], ExitPolicy.from_dict(nearest["policy_dict"]))
            summary["dis_policy"] = nearest["policy"]
            summary["dis"] = difficulty_inversion_score(torch.cat([r.exit_layer for r in run.sentences]), difficulty)
            result["variants"][f"{kind} {criterion}"] = {"rows": rows, **summary}
    words = [s.words for s in test]
    first = next(iter(models.values()))
    timed = {"full depth": lambda: run_policy(first, words, ExitPolicy())}
    for key, variant in result["variants"].items():
        if variant["best_within_0.3"] is not None:
            policy = ExitPolicy.from_dict(variant["best_within_0.3"]["policy_dict"])
            timed[key] = partial(run_policy, models[key.rsplit(" ", 1)[0]], words, policy)
    seconds = interleaved_seconds(timed, args.rounds)
    for key, variant in result["variants"].items():
        variant["wall_speedup_within_0.3"] = paired_speedup(seconds["full depth"], seconds[key]) if key in seconds else None
    result["seconds"] = seconds
    if kept:  # the kinds measured before and not now, first (as they were)
        old = {k: v for k, v in kept["models"].items() if k not in models}
        result["models"] = {**old, **result["models"]}
        result["variants"] = {**{k: v for k, v in kept["variants"].items() if k.rsplit(" ", 1)[0] in old},
                              **result["variants"]}
        result["seconds_before"] = kept.get("seconds_before") or kept.get("seconds")
    return result


def report(results: dict) -> str:
    env = results["environment"]
    commands = [*results.get("earlier_commands", []), results["command"]]
    lines = ["## Exits that see more: context exits and halting from several signals", "",
             f"{env['machine']}, {env['threads']} threads, torch {env['torch']}; one run per model; wall-clock at batch 32: "
             f"median of {results['rounds']} interleaved rounds' ratios to full depth, measured in the run that measured "
             "the model. " + ("Runs merged here, oldest first: " if len(commands) > 1 else "Command: ")
             + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    for task, r in sorted(results["tasks"].items(), key=lambda item: list(TASKS).index(item[0])):
        n_exits = len(next(iter(r["models"].values()))["exit_scores"])
        lines += [f"### {r['data']} ({r['metric']}, {r['sentences']} sentences)", "",
                  "| exits | reads (exit 1) | FLOPs per word read | full depth | "
                  + " | ".join(f"exit {i + 1}" for i in range(n_exits)) + " | oracle |",
                  "|---|---|---|---|" + "---|" * (n_exits + 1)]
        for kind, m in r["models"].items():
            reads = m.get("exits", [f"context {k}" if k else "linear" for k in m["context"]])[0]
            cost = m.get("exit_flops_per_word")
            lines.append(f"| {NAMES.get(kind, kind)} | {reads} | {'-' if cost is None else f'{cost[0]:,}'} | "
                         f"{m['full_score']:.2f} | " + " | ".join(f"{s:.2f}" for s in m["exit_scores"])
                         + f" | {m['oracle_flops_speedup']:.2f}x |")
        lines += ["", "TOKEE frontier: score drop against full depth at a FLOPs speed-up; the fastest setting within 0.1 "
                  "and 0.3 points (FLOPs; wall-clock at batch 32 for the latter); its share of the oracle's saving; the "
                  "Difficulty Inversion Score on dev at the setting nearest 2x FLOPs.", "",
                  "| exits + criterion | " + " | ".join(f"drop at {s}x" for s in SPEEDUPS)
                  + " | fastest within 0.1 | fastest within 0.3 | wall-clock | share of oracle | DIS |",
                  "|---|" + "---|" * (len(SPEEDUPS) + 5)]
        for key, v in r["variants"].items():
            drops = " | ".join("-" if d is None else f"{d:.2f}" for d in v["drop_at_flops"].values())
            w1, w3 = v["best_within_0.1"], v["best_within_0.3"]
            cell1 = f"{w1['flops_speedup']:.2f}x (`{w1['policy']}`)" if w1 else "-"
            cell3 = f"{w3['flops_speedup']:.2f}x (`{w3['policy']}`)" if w3 else "-"
            wall = "-" if v["wall_speedup_within_0.3"] is None else f"{v['wall_speedup_within_0.3']:.2f}x"
            lines.append(f"| {key} | {drops} | {cell1} | {cell3} | {wall} | {v['share_of_oracle']:.0%} | {v['dis']:.3f} |")
        lines += ["", f"![{task}](see_more_{task}.png)", ""]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["k", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    kinds = list(result["models"])
    fig, axis = plt.subplots(figsize=(7, 5))
    for key, v in result["variants"].items():
        kind, criterion = key.rsplit(" ", 1)
        color, style = colors[kinds.index(kind) % len(colors)], "-" if criterion == "signals" else "--"
        axis.plot(*zip(*v["frontier"]), style, marker="o", markersize=3, color=color, label=key)
    base = result["models"].get("linear") or next(iter(result["models"].values()))
    full = base["full_score"]
    axis.axhline(full, color="gray", linewidth=0.5)
    axis.axhline(full - 0.3, color="gray", linewidth=0.5, linestyle=":", label="full depth - 0.3")
    axis.axvline(base["oracle_flops_speedup"], color="gray", linestyle="--", label="oracle (linear exits)")
    axis.set_xlabel("FLOPs speed-up (TOKEE)")
    axis.set_ylabel(result["metric"])
    axis.set_ylim(full - 4, full + 0.5)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"{result['data']}: frontiers (dashed: entropy, solid: signals)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["ner"], choices=list(TASKS))
    for task in TASKS:
        parser.add_argument(f"--{task}-base", default=None, help=f"{task}: the model with linear exits (default: shipped)")
        parser.add_argument(f"--{task}-context", default=None, help=f"{task}: the same model after seqexit context-exits")
        parser.add_argument(f"--{task}-model", action="append", metavar="KIND=PATH",
                            help=f"{task}: one more model with other lower exits (repeatable)")
        parser.add_argument(f"--{task}-reference", default=None,
                            help=f"{task}: the model whose exits rate word difficulty for the DIS (default: the linear one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="first N test and dev sentences only (a smoke run)")
    parser.add_argument("--learn-sentences", type=int, default=0, help="train sentences for the signals heads (0: all)")
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument("--merge", action="store_true", help="keep the kinds already in the results file not measured now")
    args = parser.parse_args()
    for task in args.tasks:
        if not task_models(task, args):
            parser.error(f"give --{task}-base, --{task}-context or --{task}-model KIND=PATH")
    previous = args.output / "exits_that_see_more.json"
    before = json.loads(previous.read_text()) if args.merge and previous.exists() else {}
    kept = before.get("tasks", {})
    torch.set_num_threads(args.threads)
    results = {"command": "python benchmarks/exits_that_see_more.py " + " ".join(sys.argv[1:]), "rounds": args.rounds,
               "environment": {"machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
                               "python": platform.python_version()}, "tasks": {}}
    results["earlier_commands"] = [*before.get("earlier_commands", []), before["command"]] if before else []
    results["tasks"] = {task: r for task, r in kept.items() if task not in args.tasks}  # --merge: other tasks as they were
    for task in args.tasks:
        results["tasks"][task] = benchmark_task(task, args, kept.get(task))
        plot(results["tasks"][task], args.output / f"see_more_{task}.png")
    write_section(args.output, "exits_that_see_more", results, report(results))


if __name__ == "__main__":
    main()
