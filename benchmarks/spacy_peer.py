"""The peer a spaCy user picks first: spaCy's default CPU pipeline, trained and scored on our data.

For the benchmark report seqexit needs a row for what most people would use instead: `spacy init
config -p ner` (or `-p tagger`) with spaCy's defaults (optimize=efficiency: hash-embed CNN tok2vec,
no vectors, no transformer), trained with `spacy train` on CoNLL-2003 (NER, gold tags converted
from the original IOB1 to IOB2 by seqexit's reader) or UD English EWT (UPOS, put in `token.tag_`
so the plain tagger predicts it). Only the step budget is changed, chosen from a short trial so a
training ends within --max-minutes on one core. Scores use seqexit's own metrics on the test sets
(span F1 as conlleval, UPOS accuracy), so the row is comparable with the others; speed is timed
elsewhere, through `spacy_system_runner`.

Writes /work/spacy_peer/{ner,pos}/ (DocBins, config, model-best, train.log) and
benchmarks/spacy_peer.json and .md. Usage:
  python benchmarks/spacy_peer.py --tasks ner pos --max-minutes 25 [--retrain]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin

from run_all import DATA, TASKS as RUN_ALL_TASKS  # benchmarks/ is first on sys.path
from seqexit.data import convert, detect_scheme
from seqexit.data.formats import read_file
from seqexit.evaluation.metrics import accuracy, span_scores

HERE = Path(__file__).resolve().parent
OUT = Path("/work/spacy_peer")
PIPES = {"ner": "ner", "pos": "tagger"}
TRAIN_DEV = {"ner": (DATA / "conll2003" / "eng.train", DATA / "conll2003" / "eng.testa"),
             "pos": (DATA / "ud_en_ewt" / "en_ewt-ud-train.conllu", DATA / "ud_en_ewt" / "en_ewt-ud-dev.conllu")}
TASKS = {  # the test set, its name and metric: the other benchmarks' (run_all.TASKS)
    task: {"pipe": PIPES[task], "train": TRAIN_DEV[task][0], "dev": TRAIN_DEV[task][1], "test": test,
           "test_name": name, "metric": metric}
    for task, (_, test, name, metric) in RUN_ALL_TASKS.items()
}
TRIAL_STEPS = 400
SAFETY = 0.85  # share of the time budget the step count is planned to fill
CHECK_SENTENCES = 200


def read_tagged(task: str, path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(words, tags) per sentence: IOB2 span tags for ner, UPOS for pos."""
    sentences = read_file(path, span_tags=task == "ner")
    words = [s.words for s in sentences]
    tags = [list(s.tags) for s in sentences]
    if task == "ner":
        scheme = detect_scheme(tags)
        if scheme != "iob2":
            tags = [convert(t, scheme, "iob2") for t in tags]
    return words, tags


def to_doc(task: str, vocab, words: list[str], tags: list[str]) -> Doc:
    if task == "ner":
        return Doc(vocab, words=words, ents=tags)
    return Doc(vocab, words=words, tags=tags, pos=tags)


def prepare(task: str, out_dir: Path) -> dict[str, int]:
    """Write out_dir/corpus/{train,dev}.spacy; returns the sentence count of each."""
    corpus = out_dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    vocab = spacy.blank("en").vocab
    counts = {}
    for split in ("train", "dev"):
        words, tags = read_tagged(task, TASKS[task][split])
        docs = DocBin(attrs=["ORTH", "TAG", "POS", "ENT_IOB", "ENT_TYPE"])
        for w, t in zip(words, tags):
            docs.add(to_doc(task, vocab, w, t))
        docs.to_disk(corpus / f"{split}.spacy")
        counts[split] = len(words)
    return counts


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def spacy_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spacy", *args]


def train_command(out_dir: Path, output: Path, max_steps: int) -> list[str]:
    corpus = out_dir / "corpus"
    return spacy_command("train", str(out_dir / "config.cfg"), "--output", str(output),
                         "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
                         "--training.max_steps", str(max_steps))


def run_logged(command: list[str], log: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run `command`, stdout+stderr to `log`; returns the wall seconds and (seconds, line) per line."""
    start = time.perf_counter()
    lines = []
    with log.open("w") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=environment())
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            handle.write(line)
            handle.flush()
        code = process.wait()
    if code:
        raise RuntimeError(f"{shlex.join(command)} failed ({code}); see {log}")
    return time.perf_counter() - start, lines


def compounding_sizes(config: dict, steps: int) -> list[float]:
    """The words per batch spaCy's compounding batcher asks for at each of the first `steps` steps."""
    size = config["training"]["batcher"]["size"]
    start, stop, factor = size["start"], size["stop"], size["compound"]
    return [min(stop, start * factor ** i) for i in range(steps)]


def eval_seconds(task: str, model: Path, out_dir: Path) -> float:
    """Seconds the pipeline takes to tag the dev set once (what each of spaCy's evaluations costs)."""
    nlp = spacy.load(model)
    docs = list(DocBin().from_disk(out_dir / "corpus" / "dev.spacy").get_docs(nlp.vocab))
    words = [[t.text for t in d] for d in docs]
    start = time.perf_counter()
    list(nlp.pipe((Doc(nlp.vocab, words=w) for w in words), batch_size=1000))
    return time.perf_counter() - start


def plan_steps(task: str, out_dir: Path, max_minutes: float) -> dict:
    """Run a TRIAL_STEPS training, measure its speed, and choose max_steps for the budget.

    Batches grow (compounding 100 -> 1000 words), so the trial's rate is taken in words/s and the
    budget is filled with the batcher's own size schedule, plus one dev evaluation per
    eval_frequency steps and the trial's start-up time.
    """
    config = spacy.util.load_config(out_dir / "config.cfg")
    eval_every = config["training"]["eval_frequency"]
    command = train_command(out_dir, out_dir / "trial", TRIAL_STEPS)
    wall, lines = run_logged(command, out_dir / "trial.log")
    rows = [(t, line.split()) for t, line in lines if line.split()[:1] and line.split()[0].isdigit()]
    steps_at = {int(fields[1]): t for t, fields in rows if len(fields) > 1 and fields[1].isdigit()}
    evaluation = eval_seconds(task, out_dir / "trial" / "model-last", out_dir)
    first, last = min(steps_at), max(steps_at)
    evals_between = (last - first) // eval_every
    train_time = steps_at[last] - steps_at[first] - evals_between * evaluation
    sizes = compounding_sizes(config, last + 1)
    words_per_second = sum(sizes[first + 1:last + 1]) / max(train_time, 1e-6)
    startup = steps_at[first] - evaluation
    budget = SAFETY * max_minutes * 60 - startup - evaluation
    steps, used = 0, 0.0
    for size in compounding_sizes(config, 200_000):
        cost = size / words_per_second + (evaluation if (steps + 1) % eval_every == 0 else 0.0)
        if used + cost > budget:
            break
        used += cost
        steps += 1
    max_steps = max(eval_every, steps // eval_every * eval_every)
    return {"trial_command": shlex.join(command), "trial_steps": TRIAL_STEPS, "trial_seconds": round(wall, 1),
            "trial_steps_per_second": round(last / (steps_at[last] - startup), 3),
            "words_per_second": round(words_per_second, 1), "eval_seconds": round(evaluation, 1),
            "startup_seconds": round(startup, 1), "planned_max_steps": max_steps,
            "default_max_steps": config["training"]["max_steps"]}


def train(task: str, out_dir: Path, max_minutes: float = 25.0) -> dict:
    """spaCy's default CPU config for the task, trained with a step budget that fits max_minutes."""
    config_command = spacy_command("init", "config", str(out_dir / "config.cfg"), "-l", "en",
                                   "-p", TASKS[task]["pipe"], "-o", "efficiency", "--force")
    subprocess.run(config_command, check=True, env=environment(), stdout=subprocess.DEVNULL)
    print(f"[{task}] trial of {TRIAL_STEPS} steps", flush=True)
    plan = plan_steps(task, out_dir, max_minutes)
    max_steps = min(plan["planned_max_steps"], plan["default_max_steps"] or plan["planned_max_steps"])
    print(f"[{task}] trial: {plan['words_per_second']} words/s, eval {plan['eval_seconds']} s -> "
          f"max_steps {max_steps}", flush=True)
    command = train_command(out_dir, out_dir, max_steps)
    wall, lines = run_logged(command, out_dir / "train.log")
    logged = [int(f[1]) for f in (line.split() for _, line in lines) if len(f) > 1 and f[0].isdigit() and f[1].isdigit()]
    record = {"config_command": shlex.join(config_command), "train_command": shlex.join(command),
              "max_steps": max_steps, "last_logged_step": max(logged, default=None),
              "train_seconds": round(wall, 1), "max_minutes": max_minutes, **plan}
    (out_dir / "train_record.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def labels_of(task: str, doc: Doc) -> list[str]:
    if task == "pos":
        return [t.tag_ for t in doc]
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]


def spacy_system_runner(task: str, folder: Path) -> Callable[[list[list[str]], int], list[list[str]]]:
    """`run(words, batch_size)`: labels per word (IOB2 for ner, UPOS for pos) from the pipeline in
    `folder`, for pre-tokenised sentences; batch 1 calls the pipeline on each Doc, else `nlp.pipe`."""
    nlp = spacy.load(folder)

    def run(words: list[list[str]], batch_size: int) -> list[list[str]]:
        docs = [Doc(nlp.vocab, words=w) for w in words]
        tagged = [nlp(d) for d in docs] if batch_size == 1 else nlp.pipe(docs, batch_size=batch_size)
        return [labels_of(task, d) for d in tagged]

    return run


def score(task: str, folder: Path) -> dict:
    """Test score with seqexit's metrics, and whether batch 32 and batch 1 give the same labels."""
    words, gold = read_tagged(task, TASKS[task]["test"])
    run = spacy_system_runner(task, folder)
    predicted = run(words, 256)
    if any(len(p) != len(w) for p, w in zip(predicted, words)):
        raise RuntimeError("the runner did not return one label per word")
    value = span_scores(gold, predicted).f1 if task == "ner" else accuracy(gold, predicted)
    sample = words[:CHECK_SENTENCES]
    same = run(sample, 32) == run(sample, 1)
    return {"test": TASKS[task]["test_name"], "metric": TASKS[task]["metric"], "score": round(value, 2),
            "sentences": len(words), "words": sum(map(len, words)),
            f"batch32_equals_batch1_on_{CHECK_SENTENCES}": same}


def report(results: dict) -> str:
    lines = ["## spaCy default CPU pipeline (the spaCy user's first pick)", "",
             "| task | pipeline | test | metric | score | steps | train min | spaCy |",
             "|---|---|---|---|---|---|---|---|"]
    for task, r in results["tasks"].items():
        lines.append(f"| {task} | {' + '.join(r['components'])} | {r['test']} | {r['metric']} | {r['score']:.2f} | "
                     f"{r['max_steps']} | {r['train_seconds'] / 60:.1f} | {r['spacy']} |")
    lines += ["", "`spacy init config -l en -p ner|tagger -o efficiency` (defaults: CNN tok2vec, no vectors), "
              "`spacy train` with only `--training.max_steps` set to fit the time budget on one core; "
              "model-best, scored with seqexit's metrics on the gold words. Commands in spacy_peer.json.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["ner", "pos"])
    parser.add_argument("--max-minutes", type=float, default=25.0)
    parser.add_argument("--retrain", action="store_true", help="train again even if model-best exists")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    output = HERE / "spacy_peer.json"
    results = json.loads(output.read_text()) if output.is_file() else {"tasks": {}}
    results["environment"] = {"python": platform.python_version(), "spacy": spacy.__version__,
                              "cpu": platform.processor() or platform.machine(),
                              "threads": os.environ.get("OMP_NUM_THREADS")}
    for task in args.tasks:
        out_dir = args.out / task
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"[{task}] preparing DocBins in {out_dir / 'corpus'}", flush=True)
        counts = prepare(task, out_dir)
        print(f"[{task}] sentences: {counts}", flush=True)
        if args.retrain or not (out_dir / "model-best").is_dir():
            record = train(task, out_dir, args.max_minutes)
        else:
            print(f"[{task}] model-best exists, not training again", flush=True)
            record = json.loads((out_dir / "train_record.json").read_text())
        print(f"[{task}] trained {record['max_steps']} steps in {record['train_seconds'] / 60:.1f} min", flush=True)
        model = out_dir / "model-best"
        scored = score(task, model)
        print(f"[{task}] {scored['metric']} {scored['score']:.2f}", flush=True)
        results["tasks"][task] = {"pipeline": str(model), "components": spacy.load(model).pipe_names,
                                  "spacy": spacy.__version__, "sentences": counts, **record, **scored}
    output.write_text(json.dumps(results, indent=1) + "\n")
    text = report(results)
    (HERE / "spacy_peer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
