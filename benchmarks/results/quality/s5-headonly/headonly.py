"""How the s5-headonly run was made: bench_quality with name swaps limited to the upper-case (heading)
occurrences, so the speeches keep the real names; the generator was the names-and-words model
(today's --name-swap-words).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/results/quality/s5-headonly/headonly.py \
        --runs charnn --no-fit --config benchmarks/results/quality/s5-headonly/best-cpu.toml \
        --out benchmarks/results/quality/s5-headonly
(with best-cpu.toml's name_swap_words = true when re-run with today's code)
"""
import runpy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "src"))
from charnn import augment  # noqa: E402

orig_init = augment.NameSwapper.__init__


def init(self, *a, **k):
    orig_init(self, *a, **k)
    self.groups = [(i, up, np.zeros(0, dtype=np.int64)) for i, up, cap in self.groups if up.size]


augment.NameSwapper.__init__ = init
sys.argv = ["bench_quality.py"] + sys.argv[1:]
runpy.run_path(str(ROOT / "benchmarks" / "bench_quality.py"), run_name="__main__")
