"""Where a trained model's validation loss goes: per-character loss split by what is being predicted.

Scores the validation split exactly (batch 1, one pass, state carried, the same number as
`charnn eval`) and attributes each character's −log ŷ to one class:

  unseen word, 1st   a character of a word (textstats' definition, case-folded) that never occurs in
                     the training split, at that word's first occurrence in the validation text
  unseen word, later the same for its second and later occurrences (the network has read it before)
  seen word          a character of a word that occurs in the training split
  other              spaces, newlines, punctuation, digits

and, across those, the speaker headings (a line that is one capitalised name and a colon, e.g.
"PROSPERO:") whose name never occurs in the training split, and within them the name's letters
after the first (what a network that can copy a name it has read would predict well). The
prediction of a word's first character is counted with the word. It prints the table and a counterfactual: the loss the model
would have if every unseen-word character cost what a seen-word character costs on average.

    python benchmarks/val_breakdown.py RUN_DIR/charnn/checkpoints/best.safetensors --json benchmarks/results/breakdown/validation-loss.json
    python benchmarks/val_breakdown.py --params RUN_DIR/pytorch/best-params.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from charnn.train import checkpoint  # noqa: E402
from charnn import model as stack  # noqa: E402
from charnn.reproduce import textstats  # noqa: E402
from charnn.augment import HEADING_RE  # noqa: E402
from charnn.data.corpus import Corpus  # noqa: E402

CLASSES = ("unseen word, 1st", "unseen word, later", "seen word", "other")


def per_char_nll(params, ids: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """−log ŷ of ids[1:], read in one pass from a zero state (what stack.evaluate sums)."""
    s = stack.internal_state(params, None, 1)
    out = np.empty(len(ids) - 1)
    for i in range(0, len(ids) - 1, chunk):
        e = min(i + chunk, len(ids) - 1)
        nll, s = stack._nll(params, ids[None, i:e].T, ids[None, i + 1:e + 1].T, s)
        out[i:e] = np.asarray(nll).ravel()
    return out


def classify(val_text: str, train_words: frozenset[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class index, unseen-heading flag, flag of such a heading's name after its first letter) per
    character of the validation text."""
    cls = np.full(len(val_text), CLASSES.index("other"), dtype=np.int8)
    met: set[str] = set()
    for m in textstats.WORD_RE.finditer(val_text):
        w = m.group().casefold()
        if w in train_words:
            k = "seen word"
        else:
            k = "unseen word, later" if w in met else "unseen word, 1st"
            met.add(w)
        cls[m.start():m.end()] = CLASSES.index(k)
    heading = np.zeros(len(val_text), dtype=bool)
    rest = np.zeros(len(val_text), dtype=bool)
    for m in HEADING_RE.finditer(val_text):
        if any(w not in train_words for w in textstats.words(m.group(1))):
            heading[m.start():m.end()] = True
            rest[m.start(1) + 1:m.end(1)] = True
    return cls, heading, rest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, nargs="?")
    ap.add_argument("--params", type=Path, help="bare weights (safetensors, charnn layout) instead of a checkpoint")
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    args = ap.parse_args()
    if (args.checkpoint is None) == (args.params is None):
        raise SystemExit("give a checkpoint or --params FILE")
    if args.params is not None:
        from safetensors.numpy import load_file  # noqa: PLC0415
        params, corpus, frac = load_file(str(args.params)), Corpus.load(None), 0.9
    else:
        ckpt = checkpoint.load(checkpoint.resolve(args.checkpoint))
        cfg = ckpt.config
        params, frac = ckpt.model_params, cfg.train_fraction   # calibrated, if it was
        corpus = Corpus.load(cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level)
    train_ids, val_ids = corpus.split(frac)
    train_text, val_text = corpus.vocab.decode(train_ids), corpus.vocab.decode(val_ids)
    t0 = time.perf_counter()
    nll = per_char_nll(params, np.asarray(val_ids))
    cls, heading, rest = classify(val_text, textstats.word_set(train_text))
    cls, heading, rest = cls[1:], heading[1:], rest[1:]     # nll[i] predicts character i + 1
    total = nll.sum()
    print(f"# {args.checkpoint or args.params}: validation {len(nll):,} predictions, "
          f"{total / len(nll):.4f} nats/char ({time.perf_counter() - t0:.0f} s)")
    rows = []
    print("| class | chars | share of chars | nats/char | share of nats |\n|---|---|---|---|---|")
    for i, name in enumerate(CLASSES):
        sel = cls == i
        rows.append(dict(cls=name, chars=int(sel.sum()), nats=float(nll[sel].sum())))
    rows.append(dict(cls="unseen-name heading", chars=int(heading.sum()), nats=float(nll[heading].sum())))
    rows.append(dict(cls="  its name after the 1st letter", chars=int(rest.sum()), nats=float(nll[rest].sum())))
    for r in rows:
        n = max(r["chars"], 1)
        print(f"| {r['cls']} | {r['chars']:,} | {r['chars'] / len(nll):.1%} | {r['nats'] / n:.3f} | "
              f"{r['nats'] / total:.1%} |")
    seen = rows[CLASSES.index("seen word")]
    seen_rate = seen["nats"] / seen["chars"]
    unseen = rows[:2]
    swapped = total - sum(r["nats"] for r in unseen) + seen_rate * sum(r["chars"] for r in unseen)
    print(f"\nif unseen-word characters cost what seen-word characters do ({seen_rate:.3f}): "
          f"{swapped / len(nll):.4f} nats/char instead of {total / len(nll):.4f}")
    if args.json:
        args.json.write_text(json.dumps(dict(source=str(args.checkpoint or args.params), n=len(nll),
                                             nats_per_char=total / len(nll), rows=rows,
                                             unseen_as_seen=swapped / len(nll)), indent=1) + "\n")


if __name__ == "__main__":
    main()
