"""`spacy evaluate` through the seqexit_ner component on a CoNLL file: span P/R/F, words/s, FLOPs.

The CoNLL file is read with seqexit's reader (IOB1/IOB2/... detected, `-DOCSTART-` skipped), each
sentence becomes a Doc (words joined by single spaces) with its gold entities in `doc.ents` (or
`doc.spans["chunks"]` for a chunking model), saved as a DocBin and read back with spaCy's `Corpus`,
as `spacy evaluate` reads it. The pipeline tags the examples with `nlp.pipe` (timed) and spaCy's
`Scorer` scores them, as `nlp.evaluate` does; the FLOPs come from `doc._.seqexit_flops`.

By default the model sees the gold words (`spacy evaluate --gold-preproc`), so the figures match
`seqexit evaluate`; `--retokenize` lets the pipeline's tokenizer split the text again (plain
`spacy evaluate`), with spaCy aligning the gold entities by characters.

Writes benchmarks/spacy_evaluate.json. Usage:
  python benchmarks/spacy_evaluate.py --model runs/ner-ssft/model [--data ../shared/data/conll2003/eng.testb]
      [--preset balanced | --mode tokee --threshold 0.2 --window 2] [--docbin gold.spacy] [--limit 500]
--model takes a model folder (or shipped name), put into a blank English pipeline, or a saved
spaCy pipeline folder (config.cfg) with a seqexit_ner component.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import spacy
import torch
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Corpus

from seqexit.data import decode_spans, read_conll

HERE = Path(__file__).resolve().parent
POLICY_KEYS = ("mode", "threshold", "window", "min_layer", "static_layer")  # the component's policy block


def conll_to_docbin(path: Path, out: Path, vocab, *, chunks: bool, label_column: int, limit: int | None) -> int:
    """Write the sentences of a CoNLL file with their gold spans as a DocBin; returns how many."""
    sentences = read_conll(path, label_column=label_column)[:limit]
    docs = DocBin()
    for sentence in sentences:
        doc = Doc(vocab, words=sentence.words, spaces=[True] * (len(sentence.words) - 1) + [False])
        spans = [Span(doc, s.start, s.end, label=s.label) for s in decode_spans(sentence.tags, "iob2")]
        if chunks:
            doc.spans["chunks"] = spans
        else:
            doc.ents = spans
        docs.add(doc)
    docs.to_disk(out)
    return len(sentences)


def load_pipeline(model: str, overrides: dict, batch_size: int):
    """(nlp, component name): a saved pipeline with the policy overrides, or a blank English
    pipeline around a seqexit model folder."""
    config_path = Path(model) / "config.cfg"
    if config_path.is_file():
        config = spacy.util.load_config(config_path)
        names = [n for n, c in config["components"].items() if c.get("factory") == "seqexit_ner"]
        if len(names) != 1:
            sys.exit(f"{model}: expected one seqexit_ner component, found {names or 'none'}")
        settings = {**overrides, "batch_size": batch_size}
        return spacy.load(model, config={"components": {names[0]: settings}}), names[0]
    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_ner", config={"model": model, **overrides, "batch_size": batch_size})
    return nlp, "seqexit_ner"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="seqexit model folder, shipped name, or saved spaCy pipeline")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/conll2003/eng.testb"))
    parser.add_argument("--label-column", type=int, default=-1)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only")
    parser.add_argument("--docbin", type=Path, default=None, help="keep the gold DocBin here (default: a temporary file)")
    parser.add_argument("--retokenize", action="store_true", help="let the pipeline's tokenizer split the text again")
    parser.add_argument("--preset")
    parser.add_argument("--mode")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--window", type=int)
    parser.add_argument("--min-layer", type=int)
    parser.add_argument("--static-layer", type=int)
    parser.add_argument("--batch-size", type=int, default=32, help="docs (sentences) per forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "spacy_evaluate.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = {key: getattr(args, key) for key in POLICY_KEYS if getattr(args, key) is not None}
    overrides = {**({"preset": args.preset} if args.preset else {}), **({"policy": policy} if policy else {})}
    nlp, name = load_pipeline(args.model, overrides, args.batch_size)
    component = nlp.get_pipe(name)
    chunks = component.task == "chunk"
    with tempfile.TemporaryDirectory() as folder:
        docbin = args.docbin or Path(folder) / "gold.spacy"
        n_sentences = conll_to_docbin(args.data, docbin, nlp.vocab, chunks=chunks, label_column=args.label_column, limit=args.limit)
        examples = list(Corpus(docbin, gold_preproc=not args.retokenize)(nlp))

    docs = [eg.predicted for eg in examples]
    started = time.perf_counter()
    for eg, doc in zip(examples, nlp.pipe(docs, batch_size=1000)):
        eg.predicted = doc
    seconds = time.perf_counter() - started
    scores = Scorer(nlp).score(examples)
    prefix = "chunks" if chunks else "ents"

    words = sum(len(doc) for doc in docs)
    spent = sum(eg.predicted._.seqexit_flops[0] for eg in examples)
    full = sum(eg.predicted._.seqexit_flops[1] for eg in examples)
    layers = [t._.exit_layer for eg in examples for t in eg.predicted if t._.exit_layer]
    result = {
        "model": args.model, "data": str(args.data), "sentences": n_sentences, "words": words,
        "tokenization": "pipeline" if args.retokenize else "gold",
        "policy": component.policy.to_dict(), "preset": component.preset,
        f"{prefix}_p": scores[f"{prefix}_p"], f"{prefix}_r": scores[f"{prefix}_r"], f"{prefix}_f": scores[f"{prefix}_f"],
        f"{prefix}_per_type": scores[f"{prefix}_per_type"],
        "seconds": seconds, "words_per_second": words / seconds if seconds else None,
        "flops": spent, "flops_full": full, "flops_speedup": full / spent if spent else None,
        "mean_exit_layer": sum(layers) / len(layers) if layers else None,
        "batch_size": args.batch_size, "command": "python " + " ".join(sys.argv),
        "environment": {"machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
                        "spacy": spacy.__version__, "python": platform.python_version()},
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{prefix}_p {100 * result[f'{prefix}_p']:.2f}  {prefix}_r {100 * result[f'{prefix}_r']:.2f}  "
          f"{prefix}_f {100 * result[f'{prefix}_f']:.2f}  words/s {result['words_per_second']:.0f}  "
          f"FLOPs speed-up {result['flops_speedup'] or float('nan'):.2f}x  ({n_sentences} sentences, {words} words)")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
