"""Training recipes compared under TOKEE: full depth, and score against FLOPs and wall-clock.

For every trained model given (task, recipe, with or without SSFT, folder): full-depth test
score, then TOKEE swept over thresholds and windows through the real engine (halted words
removed), each policy timed once against the median of full-depth runs spread through the
sweep. The ordinary fine-tune's score (a model trained with the last exit only) is drawn as a
line. Summary per model: the frontier's score at 2x and 3x FLOPs, and the best FLOPs speed-up
within 0.3 points of the ordinary fine-tune. An SSFT model is measured as SSFT left it (give
RUN/ssft/model); whether `seqexit train`'s guard kept it is read from RUN/model/training.json.

Models of a task measured by an earlier run stay in the results (same ordinary model and test
set), so a model trained later can be added with a run of its own.
Writes benchmarks/training_recipes.{json,md}, recipes_{ner,pos}.png and rebuilds RESULTS.md.
Usage:
  python benchmarks/training_recipes.py --ordinary ner runs/ner/joint/encoder/model \\
      --model ner two-stage no runs/ner/joint/model --model ner two-stage yes runs/ner/model ... [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

from run_all import HERE, TASKS, write_section  # benchmarks/ is first on sys.path
from seqexit.bundle import load_model
from seqexit.data.formats import read_file
from seqexit.evaluation import PolicyScore, evaluate_policy
from seqexit.evaluation.sweep import frontier, score_at_speedup
from seqexit.exits import ExitPolicy
from seqexit.model import MultiExitTagger

THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
WINDOWS = (1, 2)
SPEEDUPS = (2.0, 3.0)
RECIPE_ORDER = ("joint", "two-stage", "distill", "distill+unlabelled", "learned-weights")
COLORS = dict(zip(RECIPE_ORDER, ("tab:red", "tab:blue", "tab:green", "tab:olive", "tab:purple")))


def measure(model: MultiExitTagger, test, full_seconds: list[float]) -> tuple[PolicyScore, list[dict]]:
    """Full depth, then every TOKEE policy; full-depth runs between windows time the reference."""
    full = evaluate_policy(model, test, ExitPolicy())
    full_seconds.append(full.seconds)
    rows = []
    for window in WINDOWS:
        for threshold in THRESHOLDS:
            result = evaluate_policy(model, test, ExitPolicy(mode="tokee", threshold=threshold, window=window))
            rows.append({"policy": str(result.policy), "policy_dict": result.policy.to_dict(), "score": result.score,
                         "flops_speedup": result.flops_speedup, "seconds": result.seconds,
                         "mean_exit_layer": result.mean_exit_layer})
        full_seconds.append(evaluate_policy(model, test, ExitPolicy()).seconds)
    return full, rows


def summarise(full: PolicyScore, rows: list[dict], ordinary: float) -> dict:
    scores = [PolicyScore(ExitPolicy.from_dict(r["policy_dict"]), r["score"], full.metric, r["flops_speedup"],
                          r["mean_exit_layer"], [], r["seconds"]) for r in rows]
    within = [r["flops_speedup"] for r in rows if ordinary - r["score"] <= 0.3 + 1e-9]
    wall = {str(s): max((r["score"] for r in rows if r["wall_speedup"] >= s), default=None) for s in SPEEDUPS}
    return {
        "score_at_flops": {str(s): score_at_speedup(scores, s) for s in SPEEDUPS},
        "best_score_at_wall": wall,
        "best_flops_within_0.3_of_ordinary": max(within, default=None),
        "frontier": [(s.flops_speedup, s.score) for s in frontier(scores)],
    }


def benchmark_task(task: str, ordinary_dir: Path, models: list[tuple[str, str, Path]], limit: int) -> dict:
    _, path, data_name, metric = TASKS[task]
    ordinary_model = load_model(ordinary_dir)
    test = read_file(path, span_tags=ordinary_model.config.scheme is not None)[: limit or None]
    ordinary = evaluate_policy(ordinary_model, test, ExitPolicy()).score
    print(f"{task}: {len(test)} test sentences; ordinary fine-tune {ordinary:.2f}", flush=True)
    runs = {}
    for recipe, ssft, folder in models:
        model = load_model(folder)
        full_seconds: list[float] = []
        full, rows = measure(model, test, full_seconds)
        reference = statistics.median(full_seconds)
        for row in rows:
            row["wall_speedup"] = reference / row["seconds"]
        key = f"{recipe}{' + SSFT' if ssft else ''}"
        record = training_record(folder)
        runs[key] = {"recipe": recipe, "ssft": ssft, "folder": str(folder), "full_score": full.score,
                     "full_seconds": full_seconds, "training": record, "rows": rows,
                     "ssft_guard": (record or {}).get("ssft_guard") if ssft else None,
                     "summary": summarise(full, rows, ordinary)}
        s = runs[key]["summary"]["score_at_flops"]
        print(f"  {key}: full {full.score:.2f}, at 2x {s['2.0']}, at 3x {s['3.0']}", flush=True)
    return {"task": task, "data": data_name, "metric": metric, "sentences": len(test), "ordinary": ordinary,
            "ordinary_folder": str(ordinary_dir), "runs": runs}


def meets_target(result: dict) -> dict[str, bool]:
    """Per recipe (joint's own excepted): full depth within 0.3 of the ordinary fine-tune, and its
    frontier's score above the better of joint and joint + SSFT at 2x and at 3x FLOPs."""
    joint = [run["summary"]["score_at_flops"] for run in result["runs"].values() if run["recipe"] == "joint"]
    out = {}
    for key, run in result["runs"].items():
        if run["recipe"] == "joint":
            continue
        ok = result["ordinary"] - run["full_score"] <= 0.3 + 1e-9
        for speed in ("2.0", "3.0"):
            mine = run["summary"]["score_at_flops"][speed]
            theirs = [j[speed] for j in joint if j[speed] is not None]
            ok = ok and mine is not None and all(mine > t for t in theirs)
        out[key] = ok
    return out


def training_record(folder: Path) -> dict | None:
    """The model's training.json; for an SSFT stage's own model (RUN/ssft/model), the record of
    the run's final model (RUN/model), which holds the SSFT guard's decision."""
    for candidate in (folder / "training.json", folder.parent.parent / "model" / "training.json"):
        if folder.parent.name == "ssft" and candidate == folder / "training.json":
            continue
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def _guard(guard: dict | None) -> str:
    if not guard:
        return "-"
    verdict = "kept" if guard["kept"] == "ssft" else "discarded"
    return f"{verdict} ({guard['full_depth_dev_before']:.2f} -> {guard['full_depth_dev_after']:.2f})"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: dict) -> str:
    env = results["environment"]
    lines = ["## Training recipes compared under TOKEE", "",
             f"`python benchmarks/training_recipes.py` ({env['machine']}, {env['threads']} threads, torch {env['torch']}; one run per task). "
             f"TOKEE thresholds {', '.join(map(str, THRESHOLDS))} x windows {', '.join(map(str, WINDOWS))}; the frontier's "
             "score at a FLOPs speed-up is interpolated between its points; wall-clock: the best score among policies at "
             "least that fast, one timed run each against the median full-depth run (read +-0.1x as noise).", ""]
    for task, r in results["tasks"].items():
        lines += [f"### {r['data']} ({r['metric']}; ordinary fine-tune {r['ordinary']:.2f})", "",
                  f"`{r.get('command', results['command'])}`", "",
                  "| recipe | full depth | vs ordinary | at 2x FLOPs | at 3x FLOPs | at 2x wall-clock | at 3x wall-clock "
                  "| best FLOPs within 0.3 of ordinary | SSFT guard (dev full depth before -> after) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        target = meets_target(r)
        for key, run in r["runs"].items():
            s = run["summary"]
            within = s["best_flops_within_0.3_of_ordinary"]
            lines.append(f"| {key} | {run['full_score']:.2f} | {run['full_score'] - r['ordinary']:+.2f} | "
                         f"{_cell(s['score_at_flops']['2.0'])} | {_cell(s['score_at_flops']['3.0'])} | "
                         f"{_cell(s['best_score_at_wall']['2.0'])} | {_cell(s['best_score_at_wall']['3.0'])} | "
                         f"{'-' if within is None else f'{within:.2f}x'} | {_guard(run['ssft_guard'])} |")
        met = [key for key, ok in target.items() if ok]
        lines += ["", "Target (full depth within 0.3 of the ordinary fine-tune, and the TOKEE frontier above joint's, "
                  "with or without SSFT, at both 2x and 3x FLOPs): " + (", ".join(met) if met else "no recipe") + (" meet it." if len(met) > 1 else " meets it.")]
        lines += ["", f"![{task}](recipes_{task}.png)", ""]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for axis, key, label in ((axes[0], "flops_speedup", "FLOPs speed-up"),
                             (axes[1], "wall_speedup", "wall-clock speed-up, batch 32")):
        for name, run in result["runs"].items():
            best = []
            for x, y in sorted(((r[key], r["score"]) for r in run["rows"]), reverse=True):
                if not best or y > best[-1][1]:
                    best.append((x, y))
            best.append((1.0, run["full_score"]))
            axis.plot(*zip(*sorted(best)), "-" if run["ssft"] else "--", marker="o", markersize=3,
                      color=COLORS.get(run["recipe"], "k"), label=name)
        axis.axhline(result["ordinary"], color="gray", linewidth=1, label="ordinary fine-tune")
        axis.set_xlabel(label)
        axis.set_ylabel(result["metric"])
        axis.set_ylim(result["ordinary"] - 5, result["ordinary"] + 1)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{result['data']}: training recipes under TOKEE (frontiers; SSFT solid, without dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs=4, action="append", metavar=("TASK", "RECIPE", "SSFT", "FOLDER"), required=True,
                        help="a trained model: task (ner/pos), recipe name, yes/no (SSFT), folder")
    parser.add_argument("--ordinary", nargs=2, action="append", metavar=("TASK", "FOLDER"), required=True,
                        help="the ordinary (last-exit-only) fine-tune of a task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N test sentences only (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    ordinary = {task: Path(folder) for task, folder in args.ordinary}
    results = {"command": "python benchmarks/training_recipes.py " + " ".join(sys.argv[1:]), "environment": {
        "machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__}, "tasks": {}}
    earlier = args.output / "training_recipes.json"
    if earlier.is_file():  # a task measured by an earlier run stays, with that run's command
        for task, result in json.loads(earlier.read_text())["tasks"].items():
            results["tasks"][task] = result
    for task in TASKS:
        models = [(recipe, ssft == "yes", Path(folder)) for t, recipe, ssft, folder in args.model if t == task]
        if not models:
            continue
        if task not in ordinary:
            parser.error(f"--ordinary {task} FOLDER is needed for the {task} models")
        result = benchmark_task(task, ordinary[task], models, args.limit) | {"command": results["command"]}
        before = results["tasks"].get(task)
        if before and before["ordinary_folder"] == result["ordinary_folder"] and before["sentences"] == result["sentences"]:
            result["runs"] = before["runs"] | result["runs"]  # models measured earlier stay (each run has its own timing)
            result["command"] = before["command"] + "; then " + result["command"]
        results["tasks"][task] = result
        plot(results["tasks"][task], args.output / f"recipes_{task}.png")
    write_section(args.output, "training_recipes", results, report(results))


if __name__ == "__main__":
    main()
