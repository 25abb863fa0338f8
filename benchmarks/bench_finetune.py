"""Fine-tuning vs training from scratch on a small corpus: test loss against training wall time.

  finetune   a Tiny Shakespeare model (--source: a checkpoint or run folder; by default one trained here
             with configs/best-cpu.toml for --source-minutes) fine-tuned on the first 100,000 characters
             of the King James Bible: `charnn train --init-from SOURCE --extend-vocab --data BIBLE-100K`
  scratch    the same configuration (the preset's, at the source's architecture) from a fresh start
  sized      the preset from a fresh start as `charnn train --config configs/best-cpu.toml` runs it, its
             width chosen from the budget (min_steps; the timing counts as training time): a smaller
             corpus may be better served by a network of another size than the source's

Both train for the same wall time (--minutes of training steps; the cosine decays over them) on the
same splits of the 100k characters, train | validation 5% | test 10%. Each curve point is the test
loss of the checkpoint best on validation so far (benchmarks/bench_quality.py's Clock); both curves
go on one plot.

    python benchmarks/bench_finetune.py --minutes 10 --source benchmarks/results/quality/charnn
    python benchmarks/bench_finetune.py --minutes 0.2 --source-minutes 0.2 --hidden-size 64 --evals 3 \\
        --out /tmp/finetune-smoke                                                   # smoke test (~2 min)
Writes OUT/finetune.json, OUT/finetune.png and prints the table. The Bible comes from --bible (a file,
e.g. corpora/kjv.txt from tools/build_corpora.py), else from Debian's bible-kjv directly.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

import bench_quality as bq  # noqa: E402
import build_corpora  # noqa: E402
from charnn import train  # noqa: E402
from charnn.data.corpus import Corpus  # noqa: E402
from charnn.train import checkpoint, finetune  # noqa: E402
from charnn.train.config import Config  # noqa: E402

SMALL_CHARS = 100_000


def bible_slice(path: Path | None, out: Path, chars: int) -> Path:
    """OUT/kjv-<chars>.txt: the first `chars` characters of the Bible (a file the runs can name as their data)."""
    text = path.read_text(encoding="utf-8") if path else build_corpora.kjv()
    target = out / f"kjv-{chars // 1000}k.txt"
    target.write_text(text[:chars], encoding="utf-8")
    return target


def source_run(args: argparse.Namespace, preset: Config) -> Path:
    """The Tiny Shakespeare model to start from: --source, or one trained here with the preset."""
    if args.source:
        return checkpoint.resolve(args.source)
    cfg = preset.replace(max_minutes=args.source_minutes, epochs=1000, max_steps=0, data="")
    print(f"[source] training the preset on Tiny Shakespeare for {args.source_minutes:g} min", flush=True)
    train.train(cfg, args.out / "source", overwrite=True, progress=False, log=lambda m: None)
    return checkpoint.resolve(args.out / "source")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time of each run [10]")
    ap.add_argument("--source", default=None, help="checkpoint or run folder of a Tiny Shakespeare model")
    ap.add_argument("--source-minutes", type=float, default=30.0, help="without --source: train one this long [30]")
    ap.add_argument("--bible", type=Path, default=None, help="the Bible as a text file [from Debian's bible-kjv]")
    ap.add_argument("--chars", type=int, default=SMALL_CHARS, help=f"characters of the Bible used [{SMALL_CHARS:,}]")
    ap.add_argument("--config", type=Path, default=bq.ROOT / "configs" / "best-cpu.toml")
    ap.add_argument("--hidden-size", type=int, default=0, help="override the preset's hidden size (smoke tests) [0]")
    ap.add_argument("--evals", type=int, default=12, help="evaluations per run [12]")
    ap.add_argument("--runs", default="finetune,scratch,sized", help="comma-separated [finetune,scratch,sized]")
    ap.add_argument("--out", type=Path, default=bq.ROOT / "benchmarks" / "results" / "finetune")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.config, "rb") as f:
        preset = Config.from_dict(tomllib.load(f))
    if args.hidden_size:
        preset = preset.replace(hidden_size=args.hidden_size, min_steps=0)
    src_path = source_run(args, preset)
    source = finetune.load_source(src_path)
    data = bible_slice(args.bible, args.out, args.chars)
    corpus = Corpus.load(data)
    meta = bq.machine_meta(args.minutes, corpus)
    meta["source"] = str(src_path)
    print(f"# {meta['date']}, {meta['cpus']} CPUs, {meta['blas']}; source {src_path} (step {source.step}); "
          f"{data}, {corpus.chars:,} chars", flush=True)
    # The source's architecture, at a fixed width: the comparison is of the starting weights alone.
    own = {k: v for k, v in preset.to_dict().items() if k not in finetune.ARCHITECTURE}
    values = finetune.inherit({**own, "data": str(data), "min_steps": 0}, source)
    scratch = Config.from_dict(values)
    tuned = scratch.replace(init_from=str(src_path), extend_vocab=True)
    runs = {"finetune": tuned, "scratch": scratch, "sized": preset.replace(data=str(data))}
    results = []
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        if name not in runs:
            raise SystemExit(f"unknown run {name!r} (finetune, scratch, sized)")
        cfg, fitted = bq.fit_width(runs[name], args.minutes, corpus, name)   # only "sized" has min_steps
        r = bq.run_charnn(name, cfg, corpus, args.minutes, args.out, args.evals, fitted.spent_s)
        if fitted.probes:
            r["sizing"] = bq.sizing_record(fitted)
        r["measured"] = {"date": datetime.now().isoformat(timespec="seconds"), "load_avg_end": bq.load_avg()}
        results.append(r)
        print(f"[{name}] {r['steps']} steps, best val {r['best_val_streamed']:.4f}, test (exact) {r['test_exact']:.4f}",
              flush=True)
        (args.out / "finetune.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    bq.plot(results, args.out / "finetune.png", f"King James Bible, first {args.chars:,} characters: "
            f"fine-tuned vs from scratch", args.minutes)
    print("\n" + bq.table(results, args.minutes))
    print(f"\n({args.out / 'finetune.json'}, {args.out / 'finetune.png'})")


if __name__ == "__main__":
    main()
