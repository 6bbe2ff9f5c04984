"""A 12-layer tagger adopted: all-mpnet-base-v2 fine-tuned on CoNLL-2003 the ordinary Hugging Face
way, then `seqexit adopt`ed, against smaller static models and in a cascade behind `en-ner`.

Steps (each writes WORK/<step>.json and is skipped when that file exists, so a stopped run
resumes where it was; `--redo STEP` runs one again):
  finetune  benchmarks/hf_finetune.py on the backbone (`../shared/tools/fetch_mpnet.sh` rebuilds it):
            one epoch, lr 5e-5, batch 16 -> WORK/hf-ner, a Hugging Face token-classification folder
  adopt     `seqexit adopt WORK/hf-ner -o WORK/model --unlabelled eng.train` (labels ignored), timed
            against the fine-tuning epoch
  calibrate `seqexit cascade WORK/model --first en-ner`, then `seqexit calibrate WORK/model` on the
            first --dev-sentences of dev (presets; cascades among them)
  static    the backbone's first k layers fine-tuned the same way (`hf_finetune.py --layers k`),
            for k in --static-layers: the paper's compressed-model comparison
  ssft      distilled self-sampling fine-tuning of the adopted model (`seqexit train --init WORK/model
            --ssft-distill 1`, one epoch over the first --ssft-sentences training sentences, their tags
            unused: every exit's target is the adopted model's own full-depth output) -> WORK/ssft/model:
            the lower exits' loss now reaches the encoder, so they become confident earlier
  ssft_curves  that model on test: full depth, every exit, the oracle, TOKEE with entropy and with
            the signals criterion (its heads fitted by `seqexit learn-exits` on training text)
  signals   the adopted model as adopted (encoder untouched, full depth the original's) with the
            signals criterion's heads fitted on the first 8,000 training sentences (labels unused),
            with and without the streak feature: TOKEE thresholds on the first 1,000 dev sentences
            (the pick: the fastest within 0.3) and on test, and the pick's words/s at batch 32 and 1;
            the heads with the streak are saved into WORK/model
  signals_all  the same with the streak only, its heads fitted on all the training text (labels
            unused) and thresholds picked on the whole dev set; its heads replace those in WORK/model
  curves    CoNLL-2003 test: full depth, every exit, the oracle, TOKEE and SENTEE sweeps, the
            presets, the static models (their full depth on the same engine), `en-ner` alone
  cascade   en-ner first, this model second (full depth, or the TOKEE policy with the highest
            FLOPs speed-up within 0.3 F1 on test), over routing thresholds; the Difficulty
            Inversion Score of the routing
  timing    words/s at batch 32 and 1, interleaved rounds (benchmarks/timing.py), every system
            against this model's full depth in the same round
  report    WORK -> benchmarks/twelve_layer.{json,md} and twelve_layer.png

Usage: python benchmarks/twelve_layer.py --backbone /path/all-mpnet-base-v2 --work runs/twelve
       [--steps finetune adopt calibrate curves cascade static timing report] [--static-layers 3 4 6 2 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CONLL = HERE.parent.parent / "shared" / "data" / "conll2003"
STEPS = ("finetune", "adopt", "calibrate", "curves", "cascade", "static", "ssft", "ssft_curves", "signals", "signals_all",
         "timing", "report")
TOKEE_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3)
SENTEE_THRESHOLDS = (0.05, 0.1, 0.2)
SSFT_SENTENCES = 4683  # a third of the training set: the first 5,000 blocks of eng.train
SSFT_TOKEE = ((0.2, 1), (0.3, 1), (0.4, 1), (0.45, 1), (0.5, 1), (0.5, 2), (0.55, 2))  # (entropy threshold, window)
SSFT_SIGNALS = ((0.99, 1), (0.98, 1), (0.95, 1), (0.9, 1))
SIGNALS_SENTENCES = 2000
ADOPTED_SIGNALS = (0.997, 0.995, 0.993, 0.99, 0.985, 0.98)  # thresholds, window 1
SIGNALS_TRAIN, SIGNALS_EPOCHS, SIGNALS_DEV = 8000, 30, 1000  # the signals step: heads' training sentences, epochs; dev
ALL_TEXT_SIGNALS = (0.995, 0.993, 0.992, 0.99, 0.988, 0.985)  # the signals_all step's thresholds, window 1
CASCADE_THRESHOLDS = (0.005, 0.01, 0.02, 0.05, 0.1)
DEV_SENTENCES = 300  # calibration runs ~60 policies on them: a 12-layer model reads ~200 words/s on 2 AVX2 cores
WITHIN = 0.3  # the bound, F1 points against full depth
SPEEDS = (2.0, 3.0, 4.0)


def limited(args) -> list[str]:
    return ["--limit", str(args.limit)] if args.limit else []


def run(command: list[str]) -> float:
    """Run a command (its output to ours); seconds taken. A failure stops the benchmark."""
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def save(work: Path, step: str, data: dict) -> None:
    (work / f"{step}.json").write_text(json.dumps(data, indent=1) + "\n")


def load(work: Path, step: str) -> dict:
    return json.loads((work / f"{step}.json").read_text())


def finetune(args) -> dict:
    command = [sys.executable, str(HERE / "hf_finetune.py"), str(args.backbone), "-o", str(args.work / "hf-ner"),
               "--epochs", "1", "--lr", "5e-5", "--batch-size", "16", "--threads", str(args.threads)] + limited(args)
    run(command)
    return json.loads((args.work / "hf-ner" / "fine_tune.json").read_text())


def adopt(args) -> dict:
    model = args.work / "model"
    command = ["seqexit", "adopt", str(args.work / "hf-ner"), "-o", str(model), "--unlabelled", str(CONLL / "eng.train")]
    command += limited(args)
    seconds = run(command)
    epoch = json.loads((args.work / "hf-ner" / "fine_tune.json").read_text())
    return {"command": " ".join(command), "seconds": seconds, "epoch_seconds": epoch["seconds"],
            "adopt_over_epoch": seconds / epoch["seconds"]}


def calibrate(args) -> dict:
    """Pair with en-ner as the cascade's first stage, then calibrate on the first dev sentences."""
    from seqexit.data.formats import read_file
    from seqexit.output import write_conll

    model = args.work / "model"
    run(["seqexit", "cascade", str(model), "--first", "en-ner"])
    dev = args.work / "dev-subset.conll"
    sentences = [s for s in read_file(CONLL / "eng.testa", span_tags=True) if s.words][:args.limit or args.dev_sentences]
    write_conll(sentences, [s.tags for s in sentences], dev)
    command = ["seqexit", "calibrate", str(model), str(dev), "--runtime", "torch"]
    return {"command": " ".join(command), "seconds": run(command), "dev_sentences": len(sentences)}


def static(args) -> dict:
    """Each k-layer model fine-tuned (unless done), then scored on test at its full depth on
    seqexit's engine (the same kernels as the adopted model), FLOPs against the 12-layer model."""
    from seqexit.adopt import adopted_tagger
    from seqexit.exits import ExitPolicy

    sentences = test_sentences(args.limit)
    rows = []
    for k in args.static_layers:
        out = args.work / f"static-{k}"
        if not (out / "fine_tune.json").is_file():
            run([sys.executable, str(HERE / "hf_finetune.py"), str(args.backbone), "-o", str(out), "--layers", str(k),
                 "--epochs", "1", "--lr", "5e-5", "--batch-size", "16", "--threads", str(args.threads)] + limited(args))
        row, _ = policy_row(adopted_tagger(out), sentences, ExitPolicy(), f"static model, {k} layers")
        row |= {"layers": k, "fine_tune_seconds": json.loads((out / "fine_tune.json").read_text())["seconds"]}
        rows.append(row)
    return {"rows": rows}


def ssft(args) -> dict:
    """Distilled SSFT: the adopted encoder trained for its lower exits too, toward its own output."""
    from seqexit.data.formats import read_file
    from seqexit.output import write_conll

    train = args.work / "ssft-train.conll"
    sentences = [s for s in read_file(CONLL / "eng.train", span_tags=True) if s.words][:args.limit or args.ssft_sentences]
    write_conll(sentences, [s.tags for s in sentences], train)
    command = ["seqexit", "train", "--train", str(train), "--dev", str(args.work / "dev-subset.conll"),
               "-o", str(args.work / "ssft"), "--init", str(args.work / "model"), "--ssft-distill", "1",
               "--ssft-epochs", "1", "--ssft-tolerance", "1.0", "--threads", str(args.threads)]
    seconds = run(command)
    adopted = load(args.work, "adopt")
    return {"command": " ".join(command), "seconds": seconds, "sentences": len(sentences),
            "adopt_and_ssft_over_epoch": (adopted["seconds"] + seconds) / adopted["epoch_seconds"]}


def depth_rows(model, sentences) -> tuple[list[float], dict, dict]:
    """Every exit's test F1, the full-depth row and the oracle of one model."""
    from seqexit.evaluation.oracle import oracle_exit_layers, oracle_flops
    from seqexit.exits import ExitPolicy, run_exits

    words = [s.words for s in sentences]
    outputs = run_exits(model, words, all_exits=True)
    exits = [score([out.labels(model, row) for out in outputs], sentences) for row in range(model.num_layers)]
    layers = [oracle_exit_layers(out.label_ids) for out in outputs]
    spent, full = oracle_flops(model, words, layers)
    full_row, _ = policy_row(model, sentences, ExitPolicy(), "full depth")
    oracle = {"f1": full_row["f1"], "flops_speedup": full / spent, "mean_exit_layer": float(torch.cat(layers).float().mean())}
    return exits, full_row, oracle


def ssft_curves(args) -> dict:
    from seqexit.bundle import load_model
    from seqexit.exits import ExitPolicy

    folder = args.work / "ssft" / "model"
    if not (folder / "halting_signals.safetensors").is_file():
        run(["seqexit", "learn-exits", str(folder), str(CONLL / "eng.train"), "--criterion", "signals",
             "--limit", str(args.limit or SIGNALS_SENTENCES)])
    sentences = test_sentences(args.limit)
    model = load_model(folder)
    exits, full_row, oracle = depth_rows(model, sentences)
    rows = [full_row]
    policies = [ExitPolicy(mode="tokee", threshold=t, window=w) for t, w in SSFT_TOKEE]
    policies += [ExitPolicy(mode="tokee", criterion="signals", threshold=t, window=w) for t, w in SSFT_SIGNALS]
    for policy in policies:
        rows.append(policy_row(model, sentences, policy, f"after SSFT: {policy}")[0])
        print(rows[-1], file=sys.stderr, flush=True)
    return {"exits": exits, "rows": rows, "oracle": oracle}


def signals_all(args) -> dict:
    """`signals` with the streak only, on all the training text and the whole dev set."""
    return signals(args, train_limit=None, dev_limit=None, thresholds=ALL_TEXT_SIGNALS, streaks=(True,))


def signals(args, *, train_limit: int | None = SIGNALS_TRAIN, dev_limit: int | None = SIGNALS_DEV,
            thresholds=ADOPTED_SIGNALS, streaks=(False, True)) -> dict:
    """The adopted model as adopted (encoder untouched, full depth the original's) with the
    signals criterion's heads, fitted with and without the streak feature on the same training
    text (labels unused; the first `train_limit` sentences, None: all); a threshold picked on dev
    (the first `dev_limit` sentences; the fastest within 0.3 of full depth), every threshold
    scored on test, and the pick's words/s against full depth at batch 32 and 1."""
    from seqexit.bundle import load_model, save_halting_signals
    from seqexit.exits import ExitPolicy
    from seqexit.training.halting_signals import corpus_signals, fit_halting_signals

    model = load_model(args.work / "model")
    train = [s.words for s in read_sentences("eng.train") if s.words][:args.limit or train_limit]
    started = time.perf_counter()
    features, agree = corpus_signals(model, train)
    read_seconds = time.perf_counter() - started
    dev, test = dev_sentences(args.limit or dev_limit), test_sentences(args.limit)
    full = {"dev": policy_row(model, dev, ExitPolicy(), "full depth")[0],
            "test": policy_row(model, test, ExitPolicy(), "full depth")[0]}
    variants = {}
    for streak in streaks:
        started = time.perf_counter()
        fitted = fit_halting_signals(features, agree, len(model.labels), epochs=SIGNALS_EPOCHS, streak=streak)
        model.halting_signals = fitted.signals
        name = "signals with the streak" if streak else "signals without the streak"
        rows = {split: [] for split in ("dev", "test")}
        for threshold in thresholds:
            policy = ExitPolicy(mode="tokee", criterion="signals", threshold=threshold, window=1)
            for split, sentences in (("dev", dev), ("test", test)):
                rows[split].append(policy_row(model, sentences, policy, f"adopted, {name}: {policy}")[0])
                print(split, rows[split][-1], file=sys.stderr, flush=True)
        picked = best_within(rows["dev"], full["dev"]["f1"])
        variants[name] = {"streak": streak, "fit_seconds": time.perf_counter() - started, "rows": rows,
                          "picked_on_dev": picked and picked["policy"], "agreement": fitted.agreement}
        if streak:
            save_halting_signals(args.work / "model", fitted.signals)
    pick = variants["signals with the streak"]["picked_on_dev"]
    timed = time_systems({"full depth": (model, ExitPolicy()), "signals, picked on dev": (model, ExitPolicy.from_dict(pick))},
                         test, args) if pick else None
    return {"train_sentences": len(train), "train_words": int(features.shape[1]), "read_seconds": read_seconds,
            "epochs": SIGNALS_EPOCHS, "dev_sentences": len(dev), "full": full, "variants": variants, "timing": timed}


def read_sentences(name: str):
    from seqexit.data.formats import read_file

    return read_file(CONLL / name, span_tags=True)


def dev_sentences(limit: int | None = None):
    return [s for s in read_sentences("eng.testa") if s.words][:limit]


def test_sentences(limit: int | None = None):
    return [s for s in read_sentences("eng.testb") if s.words][:limit]


def score(labels, sentences) -> float:
    from seqexit.evaluation.metrics import span_scores

    return span_scores([s.tags for s in sentences], labels).f1


def policy_row(model, sentences, policy, name: str) -> tuple[dict, object]:
    from seqexit.exits import run_policy

    result = run_policy(model, [s.words for s in sentences], policy)
    labels = [r.labels(model) for r in result.sentences]
    row = {"name": name, "policy": policy.to_dict(), "f1": score(labels, sentences), "flops_speedup": result.flops.speedup,
           "flops": result.flops.spent, "flops_full": result.flops.full}
    return row, result


def curves(args) -> dict:
    from seqexit.bundle import ModelBundle, load_model
    from seqexit.exits import ExitPolicy

    sentences = test_sentences(args.limit)
    words = [s.words for s in sentences]
    model = load_model(args.work / "model")
    exits, full_row, oracle = depth_rows(model, sentences)
    rows = [full_row]
    for layer in range(1, model.num_layers):
        rows.append({"name": f"static exit {layer}", "policy": ExitPolicy.static(layer).to_dict(), "f1": exits[layer - 1],
                     "flops_speedup": model.num_layers / layer})
    for mode, thresholds in (("tokee", TOKEE_THRESHOLDS), ("sentee", SENTEE_THRESHOLDS)):
        for threshold in thresholds:
            policy = ExitPolicy(mode=mode, threshold=threshold, window=1)
            rows.append(policy_row(model, sentences, policy, str(policy))[0])
            print(rows[-1], file=sys.stderr, flush=True)
    presets = {name: preset.policy for name, preset in ModelBundle(args.work / "model").presets().items()}
    preset_rows = []
    for name, policy in presets.items():
        if policy.mode != "cascade":
            preset_rows.append(policy_row(model, sentences, policy, f"preset {name}")[0])
    alone, _ = policy_row(load_model("en-ner"), sentences, ExitPolicy(), "en-ner alone (MiniLM-L6)")
    alone["flops_speedup"] = full_row["flops_full"] / alone["flops"]
    return {"sentences": len(sentences), "words": sum(map(len, words)), "exits": exits, "rows": rows,
            "presets": preset_rows, "en_ner": alone, "oracle": oracle}


def best_within(rows: list[dict], full_f1: float, modes=("tokee",)) -> dict | None:
    eligible = [r for r in rows if r["policy"]["mode"] in modes and r["f1"] >= full_f1 - WITHIN - 1e-9]
    return max(eligible, key=lambda r: r["flops_speedup"], default=None)


def cascade(args) -> dict:
    from seqexit.bundle import ModelBundle
    from seqexit.cascade import attach_first_stage, first_stage_reused, run_first_stage
    from seqexit.evaluation.difficulty import difficulty_inversion_score
    from seqexit.exits import ExitPolicy

    sentences = test_sentences(args.limit)
    words = [s.words for s in sentences]
    curve = load(args.work, "curves")
    full_f1 = curve["rows"][0]["f1"]
    model = ModelBundle(args.work / "model").open(runtime="torch").runner
    first = ModelBundle.find("en-ner").open(runtime="torch").runner
    attach_first_stage(model, first)
    best = best_within(curve["rows"], full_f1)
    thens = [None] + ([ExitPolicy.from_dict(best["policy"])] if best else [])
    rows = []
    first_run = run_first_stage(first, words)
    with first_stage_reused(model, words):
        for then in thens:
            for threshold in CASCADE_THRESHOLDS:
                policy = ExitPolicy.cascade(threshold, then=then)
                row, result = policy_row(model, sentences, policy, str(policy))
                row["sent_on"] = sum(1 for r in result.sentences if len(r.exit_layer) and int(r.exit_layer[0]) > 0)
                if then is None and threshold == 0.02:  # the routing's DIS at one setting
                    index = {label: i for i, label in enumerate(model.labels)}
                    gold = torch.cat([torch.tensor([index[t] for t in s.tags]) for s in sentences])
                    first_wrong = torch.cat([torch.tensor([model.labels.index(first.labels[i]) for i in ids.tolist()])
                                             for ids in first_run.label_ids]).ne(gold).long()
                    stage = torch.cat([(r.exit_layer > 0).long() + 1 for r in result.sentences])
                    row["dis"] = difficulty_inversion_score(stage, first_wrong)
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    for name, preset in ModelBundle(args.work / "model").presets().items():
        if preset.policy.mode == "cascade":
            rows.append(policy_row(model, sentences, preset.policy, f"preset {name}")[0])
    return {"rows": rows, "then": best["policy"] if best else None, "first_stage": "en-ner"}


def timing(args) -> dict:
    from seqexit.adopt import adopted_tagger
    from seqexit.bundle import ModelBundle
    from seqexit.cascade import attach_first_stage
    from seqexit.exits import ExitPolicy

    sentences = test_sentences(args.limit)
    curve, casc = load(args.work, "curves"), load(args.work, "cascade")
    full_f1 = curve["rows"][0]["f1"]
    model = ModelBundle(args.work / "model").open(runtime="torch").runner
    first = ModelBundle.find("en-ner").open(runtime="torch").runner
    attach_first_stage(model, first)
    systems = {"full depth": (model, ExitPolicy())}
    tokee = best_within(curve["rows"], full_f1)
    if tokee:
        systems["best TOKEE within 0.3"] = (model, ExitPolicy.from_dict(tokee["policy"]))
    for row in curve["presets"]:
        systems[row["name"]] = (model, ExitPolicy.from_dict(row["policy"]))
    best_cascade = best_within(casc["rows"], full_f1, modes=("cascade",))
    if best_cascade:
        systems["fastest cascade within 0.3"] = (model, ExitPolicy.from_dict(best_cascade["policy"]))
    top = max((r for r in casc["rows"] if r["policy"]["mode"] == "cascade"), key=lambda r: r["f1"], default=None)
    if top:
        systems["most accurate cascade"] = (model, ExitPolicy.from_dict(top["policy"]))
    if (args.work / "ssft_curves.json").is_file():
        after = load(args.work, "ssft_curves")
        best = best_within(after["rows"], ssft_reference(curve, after), modes=("tokee",))
        if best:
            ssft_model = ModelBundle(args.work / "ssft" / "model").open(runtime="torch").runner
            systems["after SSFT: best TOKEE within 0.3"] = (ssft_model, ExitPolicy.from_dict(best["policy"]))
    systems["en-ner alone"] = (first, ExitPolicy())
    for k in args.static_layers:
        if (args.work / f"static-{k}").is_dir():
            systems[f"static model, {k} layers"] = (adopted_tagger(args.work / f"static-{k}"), ExitPolicy())
    return time_systems(systems, sentences, args)


def time_systems(systems: dict, sentences, args) -> dict:
    """Words/s of each (model, policy) in `systems` at batch 32 and 1, interleaved rounds, and its
    ratio to the one named "full depth" in the same rounds."""
    from timing import interleaved_seconds, paired_speedup

    from seqexit.exits import run_policy
    from seqexit.runtime.select import cpu_name

    result = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "batches": {}}
    for batch_size, count in ((32, args.timing_sentences), (1, args.timing_sentences_bs1)):
        words = [s.words for s in sentences[:count]]
        runs = {name: (lambda m=m, p=p: run_policy(m, words, p, batch_size=batch_size)) for name, (m, p) in systems.items()}
        seconds = interleaved_seconds(runs, args.rounds)
        n_words = sum(map(len, words))
        result["batches"][str(batch_size)] = {
            "sentences": count, "words": n_words,
            "systems": {name: {"words_per_second": n_words / min(times),
                               "speedup": paired_speedup(seconds["full depth"], times), "policy": systems[name][1].to_dict()}
                        for name, times in seconds.items()}}
        print(json.dumps(result["batches"][str(batch_size)], indent=1), file=sys.stderr, flush=True)
    return result


def ssft_reference(curve: dict, after: dict) -> float:
    """The F1 the SSFT model's policies are held to: the higher of its own full depth and the
    adopted model's (the user's original model), so that SSFT cannot lower the bar."""
    return max(curve["rows"][0]["f1"], after["rows"][0]["f1"])


def report(args) -> dict:
    fine, adopted, curve = load(args.work, "finetune"), load(args.work, "adopt"), load(args.work, "curves")
    casc = load(args.work, "cascade") if (args.work / "cascade.json").is_file() else {"rows": []}
    timed = load(args.work, "timing") if (args.work / "timing.json").is_file() else None
    full_f1 = curve["rows"][0]["f1"]
    statics = load(args.work, "static")["rows"] if (args.work / "static.json").is_file() else []
    for row in statics:
        row["flops_speedup"] = curve["rows"][0]["flops_full"] / row["flops"]
    curve["static_models"] = statics
    after = load(args.work, "ssft_curves") if (args.work / "ssft_curves.json").is_file() else None
    if after:
        after["ssft"] = load(args.work, "ssft")
    signal_runs = {step: load(args.work, step) for step in ("signals", "signals_all") if (args.work / f"{step}.json").is_file()}
    record = {"finetune": fine, "adopt": adopted, "curves": curve, "cascade": casc, "timing": timed, "static": statics,
              "ssft": after, **signal_runs}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "twelve_layer.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# A 12-layer model adopted (all-mpnet-base-v2, CoNLL-2003)", ""]
    lines += [f"Fine-tuned the ordinary way in {fine['seconds'] / 60:.0f} min (one epoch); adopted without labels in "
              f"{adopted['seconds'] / 60:.0f} min ({adopted['adopt_over_epoch']:.2f} of the epoch). Test F1 at full depth "
              f"{full_f1:.2f}; exits 1..12: " + " ".join(f"{f:.1f}" for f in curve["exits"]) + ".", ""]
    lines += ["| system | F1 | drop | FLOPs x |", "|---|---|---|---|"]
    for r in curve["rows"] + curve["presets"] + curve["static_models"] + [curve["en_ner"]] + casc["rows"]:
        lines.append(f"| {r['name']} | {r['f1']:.2f} | {full_f1 - r['f1']:+.2f} | {r['flops_speedup']:.2f} |")
    lines.append(f"| oracle | {curve['oracle']['f1']:.2f} | 0.00 | {curve['oracle']['flops_speedup']:.2f} |")
    if after:
        reference, own = ssft_reference(curve, after), after["rows"][0]["f1"]
        lines += ["", f"After distilled SSFT ({after['ssft']['sentences']} training sentences, "
                  f"{after['ssft']['seconds'] / 60:.0f} min; adopt + SSFT {after['ssft']['adopt_and_ssft_over_epoch']:.2f} "
                  f"of the epoch): full depth {own:.2f}; exits 1..12: " + " ".join(f"{f:.1f}" for f in after["exits"])
                  + f"; oracle {after['oracle']['flops_speedup']:.2f}x. Drops against {reference:.2f}.", "",
                  "| system | F1 | drop | FLOPs x |", "|---|---|---|---|"]
        for r in after["rows"]:
            lines.append(f"| {r['name']} | {r['f1']:.2f} | {reference - r['f1']:+.2f} | {r['flops_speedup']:.2f} |")
    for adopted_signals in signal_runs.values():
        full = adopted_signals["full"]
        lines += ["", f"The adopted model as adopted, with the signals criterion (heads fitted on "
                  f"{adopted_signals['train_sentences']:,} training sentences, labels unused; full depth: dev "
                  f"{full['dev']['f1']:.2f} on {adopted_signals['dev_sentences']:,} sentences, test {full['test']['f1']:.2f}):", "",
                  "| system | dev F1 | drop | test F1 | drop | test FLOPs x | picked on dev |", "|---|---|---|---|---|---|---|"]
        for variant in adopted_signals["variants"].values():
            for d, t in zip(variant["rows"]["dev"], variant["rows"]["test"]):
                picked = "yes" if d["policy"] == variant["picked_on_dev"] else ""
                lines.append(f"| {t['name']} | {d['f1']:.2f} | {full['dev']['f1'] - d['f1']:+.2f} | {t['f1']:.2f} | "
                             f"{full['test']['f1'] - t['f1']:+.2f} | {t['flops_speedup']:.2f} | {picked} |")
        for batch, numbers in (adopted_signals["timing"] or {}).get("batches", {}).items():
            pick = numbers["systems"]["signals, picked on dev"]
            lines.append(f"\nThe pick at batch {batch}: {pick['words_per_second']:,.0f} words/s, {pick['speedup']:.2f}x full depth.")
    if timed:
        lines += ["", f"Wall-clock ({timed['cpu']}, {timed['threads']} threads, torch {timed['torch']}):", "",
                  "| system | words/s bs32 | x full | words/s bs1 | x full |", "|---|---|---|---|---|"]
        b32, b1 = timed["batches"]["32"]["systems"], timed["batches"]["1"]["systems"]
        for name in b32:
            lines.append(f"| {name} | {b32[name]['words_per_second']:,.0f} | {b32[name]['speedup']:.2f} | "
                         f"{b1[name]['words_per_second']:,.0f} | {b1[name]['speedup']:.2f} |")
    text = "\n".join(lines) + "\n"
    (args.output / "twelve_layer.md").write_text(text)
    variants = {(f"{name}, all training text" if step == "signals_all" else name): variant
                for step, run in signal_runs.items() for name, variant in run["variants"].items()}
    plot(curve, casc, after, {"variants": variants}, args.output / "twelve_layer.png")
    print(text)
    return {"written": str(args.output / "twelve_layer.md")}


def plot(curve: dict, casc: dict, after: dict | None, adopted_signals: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    full = curve["rows"][0]["f1"]
    for mode, marker in (("tokee", "o-"), ("sentee", "s-"), ("static", "^:")):
        rows = sorted((r for r in curve["rows"] if r["policy"]["mode"] == mode), key=lambda r: r["flops_speedup"])
        ax.plot([r["flops_speedup"] for r in rows], [r["f1"] for r in rows], marker, label=mode if mode != "static" else "static exits")
    for criterion, marker in (("entropy", "o--"), ("signals", "v--")):
        rows = sorted((r for r in (after or {}).get("rows", []) if r["policy"]["mode"] == "tokee"
                       and r["policy"].get("criterion", "entropy") == criterion), key=lambda r: r["flops_speedup"])
        if rows:
            ax.plot([r["flops_speedup"] for r in rows], [r["f1"] for r in rows], marker, label=f"tokee {criterion}, after SSFT")
    for name, variant in (adopted_signals or {}).get("variants", {}).items():
        rows = sorted(variant["rows"]["test"], key=lambda r: r["flops_speedup"])
        ax.plot([r["flops_speedup"] for r in rows], [r["f1"] for r in rows], "v-", label=f"tokee {name}, as adopted")
    statics = sorted(curve["static_models"], key=lambda r: r["flops_speedup"])
    if statics:
        ax.plot([r["flops_speedup"] for r in statics], [r["f1"] for r in statics], "D--", label="smaller models, k layers")
    from seqexit.exits import ExitPolicy

    for then in dict.fromkeys(json.dumps(r["policy"].get("then")) for r in casc["rows"]):
        rows = sorted((r for r in casc["rows"] if json.dumps(r["policy"].get("then")) == then), key=lambda r: r["flops_speedup"])
        second = "full depth" if then == "null" else str(ExitPolicy.from_dict(json.loads(then)))
        ax.plot([r["flops_speedup"] for r in rows], [r["f1"] for r in rows], "x-", label=f"cascade en-ner -> {second}")
    ax.plot([curve["en_ner"]["flops_speedup"]], [curve["en_ner"]["f1"]], "P", markersize=9, label="en-ner alone")
    ax.plot([curve["oracle"]["flops_speedup"]], [curve["oracle"]["f1"]], "k*", markersize=12, label="oracle")
    ax.axhline(full - WITHIN, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("FLOPs speed-up against full depth")
    ax.set_ylabel("F1, CoNLL-2003 test")
    top = max([full] + [r["f1"] for r in casc["rows"]])
    ax.set_ylim(full - 6, top + 0.5)
    ax.legend(fontsize=8)
    ax.set_title("all-mpnet-base-v2 (12 layers) adopted")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True, help="all-mpnet-base-v2 folder (fetch_mpnet.sh)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--redo", nargs="*", choices=STEPS, default=[])
    parser.add_argument("--static-layers", nargs="+", type=int, default=[3, 4, 6, 2, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ssft-sentences", type=int, default=SSFT_SENTENCES, help="ssft: the first N training sentences")
    parser.add_argument("--dev-sentences", type=int, default=DEV_SENTENCES, help="calibrate on the first N dev sentences")
    parser.add_argument("--timing-sentences", type=int, default=800)
    parser.add_argument("--timing-sentences-bs1", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE, help="where the report goes")
    parser.add_argument("--limit", type=int, default=None, help="a smoke run: the first N sentences of every file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    functions = {"finetune": finetune, "adopt": adopt, "calibrate": calibrate, "static": static, "curves": curves,
                 "ssft": ssft, "ssft_curves": ssft_curves, "signals": signals, "signals_all": signals_all,
                 "cascade": cascade, "timing": timing, "report": report}
    for step in args.steps:
        if (args.work / f"{step}.json").is_file() and step not in args.redo and step != "report":
            print(f"{step}: done ({args.work / step}.json)", file=sys.stderr)
            continue
        result = functions[step](args)
        if step != "report":
            save(args.work, step, result)


if __name__ == "__main__":
    main()
