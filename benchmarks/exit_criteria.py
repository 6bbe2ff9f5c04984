"""Every exit criterion, per word, on one benchmark: score against FLOPs and wall-clock speed-up.

For CoNLL-2003 test (en-ner) and UD EWT test (en-pos): each criterion (entropy, confidence,
patience, rising, vote, learned) x {SENTEE, TOKEE} swept over its threshold (or N) and window,
run through the real engine (halted words removed); the oracle bound; the score drop of each
criterion's frontier at 1.5x, 2x, 2.5x and 3x FLOPs; the share of the oracle's saving reached
within 0.3 points; and the Difficulty Inversion Score of each criterion's decisions on dev at its
setting nearest 2x FLOPs. Temperatures are fitted on dev and the learned heads trained on train
text (in memory: the shipped folders are not touched). Wall-clock speed-ups are one timed run
per policy against the median of full-depth runs spread through the sweep: a comparison of
criteria, not a speed record (benchmarks/RESULTS.md has those).

Writes benchmarks/exit_criteria.{json,md}, criteria_{ner,pos}.png and rebuilds RESULTS.md.
Usage: python benchmarks/exit_criteria.py [--tasks ner pos] [--limit N] [--learn-sentences 5000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

from run_all import DATA, HERE, TASKS, write_section  # benchmarks/ is first on sys.path
from seqexit.bundle import find_model, load_model
from seqexit.data.formats import read_file
from seqexit.evaluation import PolicyScore, evaluate_policy, oracle_bound
from seqexit.evaluation.difficulty import difficulty_inversion_score, word_difficulty
from seqexit.evaluation.sweep import frontier, score_at_speedup
from seqexit.evaluation.temperature import fit_temperatures
from seqexit.exits import ExitPolicy, run_policy
from seqexit.exits.criteria import COUNTING, CRITERIA
from seqexit.model import MultiExitTagger

from seqexit.training.learned_exits import train_learned_exits

DEV = {"ner": DATA / "conll2003" / "eng.testa", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-dev.conllu"}
TRAIN = {"ner": DATA / "conll2003" / "eng.train", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-train.conllu"}
SETTINGS = {  # per criterion: the values swept (thresholds, or N for the counting criteria)
    "entropy": (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    "confidence": (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99),
    "patience": (1, 2, 3),
    "rising": (1, 2, 3),
    "vote": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "learned": (0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
}
WINDOWS = {"tokee": (0, 1, 2), "sentee": (0,)}
SPEEDUPS = (1.5, 2.0, 2.5, 3.0)


def policies(criterion: str, mode: str) -> list[ExitPolicy]:
    out = []
    for window in WINDOWS[mode]:
        for value in SETTINGS[criterion]:
            if criterion in COUNTING:
                out.append(ExitPolicy(mode=mode, window=window, criterion=criterion, patience=int(value)))
            else:
                out.append(ExitPolicy(mode=mode, threshold=value, window=window, criterion=criterion))
    return out


def wall_frontier_score(rows: list[dict], speedup: float) -> float | None:
    """The best score among rows at least `speedup` faster by wall-clock (None if none is)."""
    fast = [r["score"] for r in rows if r["wall_speedup"] >= speedup]
    return max(fast, default=None)


def benchmark_task(task: str, args) -> dict:
    name, path, data_name, metric = TASKS[task]
    model = load_model(find_model(name))
    spans = model.config.scheme is not None
    test = read_file(path, span_tags=spans)[: args.limit or None]
    dev = read_file(DEV[task], span_tags=spans)[: args.limit or None]
    print(f"{task}: {len(test)} test sentences", flush=True)
    fit = fit_temperatures(model, dev)
    model.exit_temperatures = fit.temperatures
    train_words = [s.words for s in read_file(TRAIN[task], span_tags=spans)[: args.learn_sentences]]
    learned = train_learned_exits(model, train_words, epochs=2)
    model.learned_exits = learned.heads
    full_seconds: list[float] = []

    def timed_full() -> PolicyScore:
        result = evaluate_policy(model, test, ExitPolicy())
        full_seconds.append(result.seconds)
        return result

    full = timed_full()
    rows = []
    for criterion in CRITERIA:
        for mode in ("tokee", "sentee"):
            for policy in policies(criterion, mode):
                result = evaluate_policy(model, test, policy)
                rows.append({"criterion": criterion, "mode": mode, "policy": str(policy), "policy_dict": policy.to_dict(),
                             "score": result.score, "flops_speedup": result.flops_speedup, "seconds": result.seconds,
                             "mean_exit_layer": result.mean_exit_layer})
            timed_full()
            print(f"  {criterion} {mode}: {sum(r['criterion'] == criterion and r['mode'] == mode for r in rows)} policies",
                  flush=True)
    reference = statistics.median(full_seconds)
    for row in rows:
        row["wall_speedup"] = reference / row["seconds"]
    oracle = oracle_bound(model, [s.words for s in test])
    difficulty = word_difficulty(model, dev)
    summary = {}
    for criterion in CRITERIA:
        for mode in ("tokee", "sentee"):
            mine = [r for r in rows if r["criterion"] == criterion and r["mode"] == mode]
            scores = [PolicyScore(ExitPolicy.from_dict(r["policy_dict"]), r["score"], metric, r["flops_speedup"],
                                  r["mean_exit_layer"], [], r["seconds"]) for r in mine]
            at = {str(s): score_at_speedup(scores, s) for s in SPEEDUPS}
            within = [r["flops_speedup"] for r in mine if full.score - r["score"] <= 0.3 + 1e-9]
            best = max(within, default=1.0)
            nearest = min(mine, key=lambda r: abs(r["flops_speedup"] - 2.0))
            run = run_policy(model, [s.words for s in dev], ExitPolicy.from_dict(nearest["policy_dict"]))
            layers = torch.cat([r.exit_layer for r in run.sentences])
            summary[f"{criterion} {mode}"] = {
                "drop_at_flops": {k: (None if v is None else full.score - v) for k, v in at.items()},
                "drop_at_wall": {str(s): (None if (v := wall_frontier_score(mine, s)) is None else full.score - v) for s in SPEEDUPS},
                "best_flops_within_0.3": best, "share_of_oracle": (best - 1) / (oracle.flops_speedup - 1),
                "dis_policy": nearest["policy"], "dis": difficulty_inversion_score(layers, difficulty),
                "frontier": [(s.flops_speedup, s.score) for s in frontier(scores)],
            }
    return {"task": task, "data": data_name, "metric": metric, "sentences": len(test), "full_score": full.score,
            "full_seconds": full_seconds, "oracle_flops_speedup": oracle.flops_speedup,
            "temperatures": fit.temperatures, "ece_before": fit.ece_before, "ece_after": fit.ece_after,
            "learned_losses": learned.epoch_losses, "learned_agreement": learned.agreement,
            "rows": rows, "summary": summary}


def report(results: dict) -> str:
    env = results["environment"]
    lines = ["## Exit criteria compared, per word", "",
             f"`{results['command']}` ({env['machine']}, {env['threads']} threads, torch {env['torch']}; one run; "
             "wall-clock: one timed run per policy against the median full-depth run, so read +-0.1x as noise).", ""]
    for task, r in results["tasks"].items():
        lines += [f"### {r['data']} ({r['metric']}; full depth {r['full_score']:.2f}; oracle {r['oracle_flops_speedup']:.2f}x FLOPs)", "",
                  "Score drop against full depth of each criterion's frontier at a FLOPs speed-up (wall-clock in brackets: "
                  "the best score among policies at least that fast); the best FLOPs speed-up within 0.3 and its share of "
                  "the oracle's saving; the Difficulty Inversion Score on dev at the setting nearest 2x FLOPs (0 = harder "
                  "words always exit later, 0.5 = chance).", "",
                  "| criterion | " + " | ".join(f"drop at {s}x" for s in SPEEDUPS) + " | best within 0.3 | share of oracle | DIS |",
                  "|---|" + "---|" * (len(SPEEDUPS) + 3)]
        for key, s in r["summary"].items():
            cells = []
            for speed in map(str, SPEEDUPS):
                flops, wall = s["drop_at_flops"][speed], s["drop_at_wall"][speed]
                cells.append(("-" if flops is None else f"{flops:.2f}") + " (" + ("-" if wall is None else f"{wall:.2f}") + ")")
            lines.append(f"| {key} | " + " | ".join(cells) + f" | {s['best_flops_within_0.3']:.2f}x | {s['share_of_oracle']:.0%} | "
                         f"{s['dis']:.3f} |")
        lines += ["", "Temperatures fitted on dev: " + " / ".join(f"{t:.2f}" for t in r["temperatures"])
                  + "; ECE % per exit before -> after: " + " / ".join(f"{b:.2f}->{a:.2f}" for b, a in zip(r["ece_before"], r["ece_after"]))
                  + ". Learned heads: share of train words whose label already equals the last exit's, layers 1..L-1: "
                  + " / ".join(f"{100 * a:.1f}%" for a in r["learned_agreement"]) + ".", "", f"![{task}](criteria_{task}.png)", ""]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(CRITERIA, ("k", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:red")))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for axis, key, label in ((axes[0], "flops_speedup", "FLOPs speed-up"), (axes[1], "wall_speedup", "wall-clock speed-up, batch 32")):
        for criterion in CRITERIA:
            for mode, style in (("tokee", "-"), ("sentee", ":")):
                points = sorted((r[key], r["score"]) for r in result["rows"] if r["criterion"] == criterion and r["mode"] == mode)
                best = []
                for x, y in sorted(points, reverse=True):
                    if not best or y > best[-1][1]:
                        best.append((x, y))
                if best:
                    axis.plot(*zip(*best), style, marker="o", markersize=3, color=colors[criterion], label=f"{criterion} {mode}")
        axis.axvline(result["oracle_flops_speedup"], color="gray", linestyle="--", label="oracle (FLOPs)")
        axis.axhline(result["full_score"], color="gray", linewidth=0.5)
        axis.set_xlabel(label)
        axis.set_ylabel(result["metric"])
        axis.set_ylim(result["full_score"] - 6, result["full_score"] + 0.5)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{result['data']}: exit criteria (frontiers; TOKEE solid, SENTEE dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N test and dev sentences only (a smoke run)")
    parser.add_argument("--learn-sentences", type=int, default=5000, help="train sentences for the learned heads")
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"command": "python benchmarks/exit_criteria.py " + " ".join(sys.argv[1:]), "environment": {
        "machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
        "python": platform.python_version()}, "tasks": {}}
    args.output.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        results["tasks"][task] = benchmark_task(task, args)
    for task, result in results["tasks"].items():
        plot(result, args.output / f"criteria_{task}.png")
    write_section(args.output, "exit_criteria", results, report(results))


if __name__ == "__main__":
    main()
