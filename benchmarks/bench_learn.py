"""Learning speed per step: charnn vs its PyTorch twin, same batches, same hyper-parameters.

Both models train for --steps steps on the same (B, T) batches of one data order (charnn.data.Batches
over the training split: B contiguous streams, the state carried from one batch to the next and
never reset), with Adam (lr 2e-3 by default), gradients clipped element-wise to ±5 (charnn's
clip_by_value, torch.nn.utils.clip_grad_value_), float32, one thread. Then both are scored
exactly: one batch-1 pass with the state carried over the first --val-chars characters of the
validation split (the same text for both), in nats per character.

  twin    nn.Embedding(V, E) + nn.RNN / nn.LSTM / nn.GRU(E, H, num_layers) + nn.Linear(H, V),
          PyTorch's default initialisation, E = H unless --embed says otherwise (torch-rnn's
          wordvec_size, the usual choice of a PyTorch char-RNN: the embedding as wide as the cell).
  charnn  charnn.model.loss_and_grads / evaluate on a parameter set built by --recipe:

            engine   charnn.model.init_params as shipped, one-hot input
            native   charnn.model.init_params(..., embed=D): the engine's own input embedding
                     (E trained by the engine's gradients, PyTorch's initial distributions)
            torch    PyTorch's distributions (drawn with NumPy from the same seed), folded into the
                     engine's layout: U = W_ih Eᵀ, b = b_ih + b_hh; no embedding is trained
            embed    like torch, but E (V×D) and W_ih (G·H×D) are the trained parameters and the
                     engine sees U = W_ih Eᵀ (one-hot input: an embedding then a linear map is a
                     factorisation of U); dW_ih = dU E, dE = dUᵀ W_ih
            twin     embed + both biases trained separately (b = b_ih + b_hh, each with its own Adam
                     state): the twin's parametrisation exactly
            copy     twin, started from the twin's own initial weights (a check of the benchmark:
                     the ratio must come out at 1.000 up to float rounding)

            recipe   native, the recipe found here (first as the prototype embed): the engine's
                     embedding as wide as the twin's (D = E = H); D = 2H (native+emb2h) led at
                     H = 128 but trailed by 1-3% at H = 256

          a recipe may carry modifiers, '+'-separated: embD / embKh (embedding width D or K·H
          instead of E), esS (E ~ N(0, S²)), uS (no embedding; U trained as U/S and used as
          S·(U/S), i.e. S times Adam's step on U), fb1 (LSTM forget-gate bias +1), c0 (output
          bias 0), b0 (all recurrent biases 0), 2b (split biases)

The table gives, per row, the mean over seeds of the validation loss of charnn and of the twin
and their ratio charnn / twin (target: <= 1.01 in every row). Seeds: charnn's NumPy draws and the
twin's torch.manual_seed use the same seed number.

    python benchmarks/bench_learn.py --cells rnn lstm --hidden 128 --layers 1 --steps 300      # quick look
    python benchmarks/bench_learn.py --recipe engine torch embed --cells lstm --steps 300       # compare recipes
    python benchmarks/bench_learn.py --corpus shakespeare stdlib --cells rnn lstm gru \\
        --hidden 128 256 --layers 1 2 --steps 400 --seeds 0 1 --json learn.json               # the full grid

Second corpus ("stdlib"): the Python standard library's own source, the sorted top-level *.py files
of sysconfig.get_paths()['stdlib'] concatenated until 1.1 MB, restricted to printable ASCII and
newline: on every machine without a download, deterministic for a given Python version (printed).
Run with one thread (OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; torch is set to
one thread here).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charnn import model  # noqa: E402
from charnn.data import Batches, default_corpus_path, load_text, split  # noqa: E402
from charnn.data.vocab import Vocab  # noqa: E402
from charnn.train.optim import Adam, clip_by_value  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STDLIB_CHARS = 1_100_000


# --------------------------------------------------------------------------------------------
# Corpora

def stdlib_text(limit: int = STDLIB_CHARS) -> str:
    """The standard library's top-level *.py files, sorted by name, as printable ASCII + newline."""
    keep = set(range(32, 127)) | {10}
    table = {c: None for c in range(0x110000) if c not in keep}   # str.translate drops the rest
    parts, size = [], 0
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        s = f.read_text(encoding="utf-8", errors="replace").translate(table)
        parts.append(s)
        size += len(s)
        if size >= limit:
            break
    return "".join(parts)[:limit]


def load_corpus(name: str) -> str:
    if name == "shakespeare":
        return load_text(default_corpus_path())
    if name == "stdlib":
        return stdlib_text()
    return load_text(name)                                        # any text file


# --------------------------------------------------------------------------------------------
# The PyTorch twin

class Twin(torch.nn.Module):
    def __init__(self, cell: str, V: int, E: int, H: int, layers: int):
        super().__init__()
        rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.emb = torch.nn.Embedding(V, E)
        self.rnn = rnn(E, H, layers, batch_first=True)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x: torch.Tensor, state):
        out, state = self.rnn(self.emb(x), state)
        return self.head(out), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def train_twin(m: Twin, batches: Batches, steps: int, lr: float, clip: float) -> list[float]:
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    state, losses = None, []
    for k in range(steps):
        x, y = (torch.from_numpy(a.astype(np.int64)) for a in batches.get(k % len(batches)))
        logits, state = m(x, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(m.parameters(), clip)
        opt.step()
        state = detach(state)
        losses.append(loss.item())
    return losses


@torch.no_grad()
def eval_twin(m: Twin, ids: np.ndarray, chunk: int = 1000) -> float:
    """Mean nats/char over ids read at batch 1 with the state carried."""
    total, state = 0.0, None
    for s in range(0, len(ids) - 1, chunk):
        e = min(s + chunk, len(ids) - 1)
        x = torch.from_numpy(ids[None, s:e].astype(np.int64))
        y = torch.from_numpy(ids[s + 1:e + 1].astype(np.int64))
        logits, state = m(x, state)
        total += float(torch.nn.functional.cross_entropy(logits[0], y, reduction="sum"))
    return total / (len(ids) - 1)


# --------------------------------------------------------------------------------------------
# charnn's side: the trained parameters θ and the engine's parameter set built from them
#
# θ holds the engine's keys, except that with an embedding the first layer's U is W_ih (G·H, D)
# and E (V, D) is added, and with split biases each layer's b (and a GRU's bn) is replaced by
# b_ih, b_hh (G·H,) as in PyTorch. fold(θ) gives the engine's dict, chain() maps its gradients back.

def prefixes(cell: str, layers: int) -> list[str]:
    return [""] if (cell == "rnn" and layers == 1) else [f"L{l}." for l in range(layers)]


class Charnn:
    def __init__(self, theta: dict[str, np.ndarray], cell: str, layers: int, u_scale: float = 1.0,
                 native: bool = False):
        self.theta, self.cell, self.u_scale = theta, cell, u_scale
        self.pre = prefixes(cell, layers)
        self.embed = "E" in theta and not native        # the prototype folds E into U itself
        self.split = self.pre[0] + "b_ih" in theta
        self.H = theta[self.pre[0] + "W"].shape[1]

    def fold(self) -> dict[str, np.ndarray]:
        th, H = self.theta, self.H
        p = {k: v for k, v in th.items() if not (k == "E" and self.embed) and not k.endswith(("b_ih", "b_hh"))}
        if self.embed:
            u = self.pre[0] + "U"
            p[u] = np.ascontiguousarray(th[u] @ th["E"].T)
        elif self.u_scale != 1.0:
            p[self.pre[0] + "U"] = th[self.pre[0] + "U"] * self.u_scale
        if self.split:
            for q in self.pre:
                b_ih, b_hh = th[q + "b_ih"], th[q + "b_hh"]
                if self.cell == "gru":                   # b_hn sits inside the reset gate: bn
                    p[q + "b"] = b_ih + np.concatenate([b_hh[:2 * H], np.zeros(H, b_hh.dtype)])
                    p[q + "bn"] = b_hh[2 * H:].copy()
                else:
                    p[q + "b"] = b_ih + b_hh
        return p

    def chain(self, g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        th, H = self.theta, self.H
        out = {k: v for k, v in g.items() if k in th}
        if self.embed:
            u = self.pre[0] + "U"
            out["E"] = g[u].T @ th[u]                     # dE = dUᵀ W_ih
            out[u] = g[u] @ th["E"]                       # dW_ih = dU E
        elif self.u_scale != 1.0:
            out[self.pre[0] + "U"] = g[self.pre[0] + "U"] * self.u_scale
        if self.split:
            for q in self.pre:
                db = g[q + "b"]
                out[q + "b_ih"] = db
                out[q + "b_hh"] = (np.concatenate([db[:2 * H], g[q + "bn"]]) if self.cell == "gru"
                                   else db.copy())
        return out


def torch_like_theta(V: int, H: int, D: int, cell: str, layers: int, seed: int) -> dict[str, np.ndarray]:
    """PyTorch's default distributions in the twin's parametrisation, drawn with NumPy:
    E ~ N(0, 1); every W_ih, W_hh, b_ih, b_hh, V, c ~ U(±1/√H)."""
    rng = np.random.default_rng(seed)
    k, G = 1.0 / np.sqrt(H), GATES[cell]
    u = lambda *shape: rng.uniform(-k, k, size=shape).astype(np.float32)  # noqa: E731
    th = {"E": rng.standard_normal((V, D)).astype(np.float32)}
    for l, q in enumerate(prefixes(cell, layers)):
        th[q + "U"] = u(G * H, D if l == 0 else H)
        th[q + "W"] = u(G * H, H)
        th[q + "b_ih"], th[q + "b_hh"] = u(G * H), u(G * H)
    th["V"], th["c"] = u(V, H), u(V)
    return th


def twin_theta(m: Twin, cell: str, layers: int) -> dict[str, np.ndarray]:
    """The twin's weights as θ (split biases, embedding), gates permuted to charnn's order."""
    H = m.rnn.hidden_size
    perm = (np.concatenate([np.arange(2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
            if cell == "lstm" else np.arange(GATES[cell] * H))            # torch (i,f,g,o) -> (i,f,o,g)
    get = lambda t: t.detach().numpy().astype(np.float32).copy()  # noqa: E731
    th = {"E": get(m.emb.weight)}
    for l, q in enumerate(prefixes(cell, layers)):
        w = lambda name: np.ascontiguousarray(get(getattr(m.rnn, f"{name}_l{l}"))[perm])  # noqa: E731
        th[q + "U"], th[q + "W"] = w("weight_ih"), w("weight_hh")
        th[q + "b_ih"], th[q + "b_hh"] = w("bias_ih"), w("bias_hh")
    th["V"], th["c"] = get(m.head.weight), get(m.head.bias)
    return th


def fold_into(th: dict[str, np.ndarray], cell: str, layers: int, *, embed: bool, split: bool) -> dict[str, np.ndarray]:
    """Keep or fold θ's embedding and its split biases."""
    c = Charnn(th, cell, layers)
    folded = c.fold()
    out = {k: v for k, v in th.items()}
    if not embed:
        out.pop("E")
        out[c.pre[0] + "U"] = folded[c.pre[0] + "U"]
    if not split:
        for q in c.pre:
            out.pop(q + "b_ih"), out.pop(q + "b_hh")
            out[q + "b"] = folded[q + "b"]
            if cell == "gru":
                out[q + "bn"] = folded[q + "bn"]
    return out


ALIASES = {"recipe": "native"}      # the recipe this benchmark found (BENCHMARKS.md, "Learning per step")


def parse_recipe(recipe: str, H: int, E: int) -> tuple[str, dict]:
    """'base+mod+mod' -> (base, options); see the module docstring for the modifiers."""
    base, *mods = ALIASES.get(recipe, recipe).split("+")
    if base not in ("engine", "native", "torch", "embed", "twin", "copy"):
        raise SystemExit(f"unknown recipe base {base!r}")
    o = dict(D=E, embed=base in ("embed", "twin"), split=base == "twin", u_scale=1.0, e_std=1.0,
             fb1=False, b0=False, c0=False)
    for m in mods:
        if m.startswith("emb"):                          # embD: width D; embKh: width K·H
            o["D"] = int(m[3:-1]) * H if m.endswith("h") else int(m[3:])
            o["embed"] = True
        elif m.startswith("es"):
            o["e_std"] = float(m[2:])
        elif m.startswith("u"):
            o["u_scale"] = float(m[1:])
        elif m == "2b":
            o["split"] = True
        elif m in ("fb1", "b0", "c0"):
            o[m] = True
        else:
            raise SystemExit(f"unknown recipe modifier {m!r} in {recipe!r}")
    if o["embed"] and o["u_scale"] != 1.0:
        raise SystemExit(f"{recipe!r}: uS scales a plain U, not an embedding")
    return base, o


def charnn_theta(recipe: str, V: int, H: int, E: int, cell: str, layers: int, seed: int,
                 twin: Twin) -> dict[str, np.ndarray]:
    """charnn's trained parameters θ for a recipe, drawn from `seed` (copy: the twin's weights)."""
    base, o = parse_recipe(recipe, H, E)
    if base == "engine":
        th = model.init_params(V, H, seed=seed, dtype=np.float32, cell=cell, layers=layers)
    elif base == "native":
        th = model.init_params(V, H, seed=seed, dtype=np.float32, cell=cell, layers=layers, embed=o["D"])
    elif base == "copy":
        th = twin_theta(twin, cell, layers)
    else:
        th = fold_into(torch_like_theta(V, H, o["D"], cell, layers, seed), cell, layers,
                       embed=o["embed"], split=o["split"])
    pres = prefixes(cell, layers)
    for q in pres:
        if o["b0"]:
            for b in ("b", "b_ih", "b_hh", "bn"):
                if q + b in th:
                    th[q + b][:] = 0
        if o["fb1"] and cell == "lstm":                  # forget gate: rows H..2H (i, f, o, g)
            th[q + ("b" if q + "b" in th else "b_ih")][H:2 * H] += 1.0
    if o["c0"]:
        th["c"][:] = 0
    if "E" in th:
        th["E"] *= o["e_std"]                            # E ~ N(0, σ²) instead of N(0, 1)
    if o["u_scale"] != 1.0:
        th[pres[0] + "U"] /= o["u_scale"]                # trained as U / s, used as s·(U / s)
    return th


def train_charnn(c: Charnn, batches: Batches, steps: int, lr: float, clip: float) -> list[float]:
    opt = Adam(lr)
    state, losses = None, []
    for k in range(steps):
        x, y = batches.get(k % len(batches))
        loss, grads, state = model.loss_and_grads(c.fold(), x, y, state)
        grads = c.chain(grads)
        clip_by_value(grads, -clip, clip)
        opt.step(c.theta, grads)
        losses.append(float(loss))
    return losses


def eval_charnn(c: Charnn, ids: np.ndarray) -> float:
    total, n, _ = model.evaluate(c.fold(), ids)
    return total / n


# --------------------------------------------------------------------------------------------

def run_row(corpus: str, data: dict, cell: str, H: int, layers: int, seed: int, recipes: list[str],
            args: argparse.Namespace) -> list[dict]:
    V, batches, val = data["V"], data["batches"], data["val"]
    E = args.embed or H
    torch.manual_seed(seed)
    twin = Twin(cell, V, E, H, layers)
    thetas = {r: charnn_theta(r, V, H, E, cell, layers, seed, twin) for r in recipes}  # before training
    t0 = time.perf_counter()
    tl = train_twin(twin, batches, args.steps, args.lr, args.clip)
    twin_val = eval_twin(twin, val)
    t_twin = time.perf_counter() - t0
    rows = []
    for r in recipes:
        c = Charnn(thetas[r], cell, layers, parse_recipe(r, H, E)[1]["u_scale"],
                   native=parse_recipe(r, H, E)[0] == "native")
        t0 = time.perf_counter()
        cl = train_charnn(c, batches, args.steps, args.lr, args.clip)
        val_c = eval_charnn(c, val)
        rows.append(dict(corpus=corpus, cell=cell, hidden=H, layers=layers, seed=seed, recipe=r,
                         embed=E, steps=args.steps, charnn_val=val_c, twin_val=twin_val,
                         ratio=val_c / twin_val, charnn_train_last50=float(np.mean(cl[-50:])),
                         twin_train_last50=float(np.mean(tl[-50:])),
                         charnn_s=time.perf_counter() - t0, twin_s=t_twin))
        print(f"  {corpus:11s} {cell:4s} H={H:<4d} L={layers} seed={seed} {r:22s} charnn {val_c:.4f}  "
              f"twin {twin_val:.4f}  ratio {val_c / twin_val:.4f}   ({rows[-1]['charnn_s']:.0f}s / {t_twin:.0f}s)",
              flush=True)
    return rows


def summarise(rows: list[dict]) -> None:
    keys = sorted({(r["corpus"], r["cell"], r["hidden"], r["layers"], r["recipe"]) for r in rows},
                  key=lambda k: (k[0], ["rnn", "lstm", "gru"].index(k[1]), k[2], k[3], k[4]))
    print(f"\n{'corpus':11s} {'cell':4s} {'H':>4s} {'L':>2s} {'recipe':22s} {'seeds':6s} "
          f"{'charnn':>7s} {'twin':>7s} {'ratio':>7s} {'worst':>7s}")
    for k in keys:
        rs = [r for r in rows if (r["corpus"], r["cell"], r["hidden"], r["layers"], r["recipe"]) == k]
        cv = statistics.mean(r["charnn_val"] for r in rs)
        tv = statistics.mean(r["twin_val"] for r in rs)
        worst = max(r["ratio"] for r in rs)
        print(f"{k[0]:11s} {k[1]:4s} {k[2]:4d} {k[3]:2d} {k[4]:22s} {len(rs):<6d} "
              f"{cv:7.4f} {tv:7.4f} {cv / tv:7.4f} {worst:7.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", nargs="+", default=["shakespeare"],
                    help="shakespeare, stdlib or a text file path")
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=list(GATES))
    ap.add_argument("--hidden", nargs="+", type=int, default=[128])
    ap.add_argument("--layers", nargs="+", type=int, default=[1])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--recipe", nargs="+", default=["recipe"],
                    help="charnn's parametrisation: recipe (= embed+emb2h), engine, torch, embed, "
                         "twin, copy, with +modifiers")
    ap.add_argument("--embed", type=int, default=0, help="the twin's embedding width E (0: E = H)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--val-chars", type=int, default=20_000)
    ap.add_argument("--json", type=Path, help="write every row (per seed and recipe) here")
    args = ap.parse_args()

    torch.set_num_threads(1)
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}; "
          f"B={args.batch} T={args.max_len} Adam {args.lr:g}, clip ±{args.clip:g}, {args.steps} steps, "
          f"val = first {args.val_chars} chars of the validation split, batch 1", flush=True)
    rows, t_start = [], time.perf_counter()
    for name in args.corpus:
        text = load_corpus(name)
        vocab = Vocab.from_text(text)
        train_ids, val_ids = split(vocab.encode(text), 0.9)
        data = dict(V=len(vocab), batches=Batches(train_ids, args.batch, args.max_len),
                    val=val_ids[: args.val_chars + 1])
        src = f" (Python {platform.python_version()} stdlib)" if name == "stdlib" else ""
        print(f"{name}{src}: {len(text):,} chars, vocabulary {len(vocab)}, "
              f"{len(data['batches'])} batches per epoch", flush=True)
        for cell in args.cells:
            for H in args.hidden:
                for L in args.layers:
                    for seed in args.seeds:
                        rows += run_row(name, data, cell, H, L, seed, args.recipe, args)
                        if args.json:                # after every row: a long grid keeps what it has
                            args.json.write_text(json.dumps(dict(
                                args={k: str(v) for k, v in vars(args).items()},
                                python=platform.python_version(), rows=rows), indent=1))
    summarise(rows)
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
