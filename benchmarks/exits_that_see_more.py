"""Exits that see more: context exits and the "signals" criterion against today's exits, under TOKEE.

For each task, two models with the same encoder: the linear exits (`--{task}-base`, by default
the shipped model) and the same model after `seqexit context-exits` (`--{task}-context`). On each,
the "signals" heads are trained on train text in memory (label-free). Four variants, an ablation:
linear exits + entropy (today), linear + signals, context + entropy, context + signals; each swept
over its thresholds x windows 0-2 through the real engine (halted words removed) on test. For each:
every exit's score, the frontier, the best FLOPs speed-up within 0.1 and 0.3 points of full depth
and its share of the oracle's saving, the Difficulty Inversion Score on dev at the setting nearest
2x FLOPs, and the wall-clock speed-up at batch 32 of the fastest setting within 0.3 (rounds
interleaved with full depth, median of paired ratios).

Writes benchmarks/exits_that_see_more.{json,md}, see_more_{ner,pos}.png and rebuilds RESULTS.md.
Usage: python benchmarks/exits_that_see_more.py --ner-context runs/ctx/en-ner [--pos-context ...]
"""

from __future__ import annotations

import argparse
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
VARIANTS = (("linear", "entropy"), ("linear", "signals"), ("context", "entropy"), ("context", "signals"))


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


def benchmark_task(task: str, args) -> dict:
    name, path, data_name, metric = TASKS[task]
    spans = task != "pos"
    test = read_file(path, span_tags=spans)[: args.limit or None]
    dev = read_file(DEV[task], span_tags=spans)[: args.limit or None]
    train_words = [s.words for s in read_file(TRAIN[task], span_tags=spans)[: args.learn_sentences or None]]
    models = {"linear": load_model(find_model(getattr(args, f"{task}_base") or name)),
              "context": load_model(find_model(getattr(args, f"{task}_context")))}
    result = {"task": task, "data": data_name, "metric": metric, "sentences": len(test), "models": {}, "variants": {}}
    for kind, model in models.items():
        print(f"{task} {kind}: signals heads on {len(train_words)} train sentences", flush=True)
        signals = train_halting_signals(model, train_words)
        model.halting_signals = signals.signals
        full = evaluate_policy(model, test, ExitPolicy())
        oracle = oracle_bound(model, [s.words for s in test])
        result["models"][kind] = {
            "context": [head.context for head in model.exits], "full_score": full.score,
            "exit_scores": [e.score for e in evaluate_exits(model, test)],
            "oracle_flops_speedup": oracle.flops_speedup, "signals_agreement": signals.agreement,
        }
    difficulty = word_difficulty(models["linear"], dev)  # by the linear exits: the same encoder, the reference words
    for kind, criterion in VARIANTS:
        model, info = models[kind], result["models"][kind]
        print(f"{task}: {kind} exits, {criterion}", flush=True)
        rows = sweep_variant(model, test, criterion)
        summary = summarise(rows, info["full_score"], info["oracle_flops_speedup"], metric)
        nearest = min(rows, key=lambda r: abs(r["flops_speedup"] - 2.0))
        run = run_policy(model, [s.words for s in dev], ExitPolicy.from_dict(nearest["policy_dict"]))
        summary["dis_policy"] = nearest["policy"]
        summary["dis"] = difficulty_inversion_score(torch.cat([r.exit_layer for r in run.sentences]), difficulty)
        result["variants"][f"{kind} {criterion}"] = {"rows": rows, **summary}
    words = [s.words for s in test]
    timed = {"full depth": lambda: run_policy(models["linear"], words, ExitPolicy())}
    for key, variant in result["variants"].items():
        if variant["best_within_0.3"] is not None:
            policy = ExitPolicy.from_dict(variant["best_within_0.3"]["policy_dict"])
            timed[key] = partial(run_policy, models[key.split()[0]], words, policy)
    seconds = interleaved_seconds(timed, args.rounds)
    for key, variant in result["variants"].items():
        variant["wall_speedup_within_0.3"] = paired_speedup(seconds["full depth"], seconds[key]) if key in seconds else None
    result["seconds"] = seconds
    return result


def report(results: dict) -> str:
    env = results["environment"]
    lines = ["## Exits that see more: context exits and halting from several signals", "",
             f"`{results['command']}` ({env['machine']}, {env['threads']} threads, torch {env['torch']}; one run; "
             f"wall-clock at batch 32: median of {results['rounds']} interleaved rounds' ratios to full depth).", ""]
    for task, r in results["tasks"].items():
        lin, ctx = r["models"]["linear"], r["models"]["context"]
        lines += [f"### {r['data']} ({r['metric']}, {r['sentences']} sentences)", "",
                  "| exits | full depth | " + " | ".join(f"exit {i + 1}" for i in range(len(lin["exit_scores"]))) + " | oracle |",
                  "|---|---|" + "---|" * (len(lin["exit_scores"]) + 1)]
        for kind, m in (("linear (today)", lin), ("context", ctx)):
            lines.append(f"| {kind} | {m['full_score']:.2f} | " + " | ".join(f"{s:.2f}" for s in m["exit_scores"])
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

    styles = {"linear entropy": ("k", "-"), "linear signals": ("tab:blue", "--"),
              "context entropy": ("tab:orange", "-"), "context signals": ("tab:red", "-")}
    fig, axis = plt.subplots(figsize=(7, 5))
    for key, v in result["variants"].items():
        color, style = styles[key]
        axis.plot(*zip(*v["frontier"]), style, marker="o", markersize=3, color=color, label=key)
    full = result["models"]["linear"]["full_score"]
    axis.axhline(full, color="gray", linewidth=0.5)
    axis.axhline(full - 0.3, color="gray", linewidth=0.5, linestyle=":", label="full depth - 0.3")
    axis.axvline(result["models"]["linear"]["oracle_flops_speedup"], color="gray", linestyle="--", label="oracle (linear exits)")
    axis.set_xlabel("FLOPs speed-up (TOKEE)")
    axis.set_ylabel(result["metric"])
    axis.set_ylim(full - 4, full + 0.5)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"{result['data']}: frontiers before (black) and after")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["ner"], choices=list(TASKS))
    for task in TASKS:
        parser.add_argument(f"--{task}-base", default=None, help=f"{task}: the model with linear exits (default: shipped)")
        parser.add_argument(f"--{task}-context", default=None, help=f"{task}: the same model after seqexit context-exits")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="first N test and dev sentences only (a smoke run)")
    parser.add_argument("--learn-sentences", type=int, default=0, help="train sentences for the signals heads (0: all)")
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    for task in args.tasks:
        if getattr(args, f"{task}_context") is None:
            parser.error(f"--{task}-context is needed (a folder written by seqexit context-exits)")
    torch.set_num_threads(args.threads)
    results = {"command": "python benchmarks/exits_that_see_more.py " + " ".join(sys.argv[1:]), "rounds": args.rounds,
               "environment": {"machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
                               "python": platform.python_version()}, "tasks": {}}
    for task in args.tasks:
        results["tasks"][task] = benchmark_task(task, args)
        plot(results["tasks"][task], args.output / f"see_more_{task}.png")
    write_section(args.output, "exits_that_see_more", results, report(results))


if __name__ == "__main__":
    main()
