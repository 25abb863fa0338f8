"""`charnn gradflow`: the gradient flow of a trained model over a window of real text, as a figure.

Left: the heatmap of log₁₀ ‖∂L_t/∂h_s‖ over (t, s), s ≤ t (`charnn.eval.gradflow`). Right: the
same norms against the distance back, ‖∂L_T/∂h_t‖ for the window's last step against T − t, and
the geometric mean over every t of ‖∂L_t/∂h_{t−k}‖ against k.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import model  # noqa: E402
from ..data import DataError, read_corpus  # noqa: E402
from ..data.corpus import IN_MEMORY, Corpus  # noqa: E402
from ..eval.gradflow import GradFlow, grad_flow  # noqa: E402
from ..train.checkpoint import Checkpoint, CheckpointError  # noqa: E402

WARMUP = 1000   # characters read before the window (state carried) so it starts from a typical state


def text_ids(ckpt: Checkpoint, text: str | Path | None) -> tuple[np.ndarray, str]:
    """The ids of the text at `text`, or of the run's validation split; and what they are, for titles."""
    vocab, cfg = ckpt.vocab, ckpt.config
    if text is not None:
        raw = read_corpus(text, encoding=cfg.encoding, byte_level=cfg.byte_level)
        return np.asarray(vocab.encode(raw)), Path(text).name    # VocabError names unknown characters
    if ckpt.corpus.get("path") == IN_MEMORY:
        raise CheckpointError("this model was trained on text given in memory: pass --text FILE")
    corpus = Corpus.load(cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level)
    if corpus.vocab != vocab:
        raise CheckpointError(f"the vocabulary of {corpus.display_path} does not match the checkpoint's")
    _, val_ids = corpus.split(cfg.train_fraction)
    return np.asarray(val_ids), f"validation split of {corpus.display_path}"


def window_flow(params: dict, ids: np.ndarray, length: int, offset: int = 0, layer: int = -1) -> GradFlow:
    """The gradient flow over ids[offset : offset + length + 1], from the state after reading the
    (up to WARMUP) characters before it."""
    if offset + 2 > len(ids):
        raise DataError(f"the text has {len(ids)} characters: nothing to read at offset {offset}")
    window = ids[offset:offset + length + 1]
    h0 = None
    if offset > 0:
        _, _, h0 = model.evaluate(params, ids[max(0, offset - WARMUP):offset + 1])
    return grad_flow(params, window, h0, layer=layer)


def plot(flows: Sequence[tuple[str, GradFlow]], out: str | Path, title: str = "") -> None:
    """One row per flow: the (t, s) heatmap and the norms against the distance back, to a PNG."""
    n = len(flows)
    fig, axes = plt.subplots(n, 2, figsize=(10, 3.6 * n), squeeze=False)
    finite = np.concatenate([f.norms[np.isfinite(f.norms) & (f.norms > 0)] for _, f in flows])
    lo, hi = (np.log10(finite.min()), np.log10(finite.max())) if finite.size else (-1.0, 0.0)
    for (label, flow), (ax_map, ax_lag) in zip(flows, axes):
        with np.errstate(divide="ignore"):
            logs = np.log10(flow.norms[1:])
        im = ax_map.imshow(logs, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="viridis",
                           extent=(-0.5, flow.T + 0.5, 0.5, flow.T + 0.5))
        ax_map.set_xlabel("s (hidden state h_s)")
        ax_map.set_ylabel("t (loss L_t)")
        ax_map.set_title(f"{label}: log10 ‖∂L_t/∂h_s‖")
        fig.colorbar(im, ax=ax_map)
        last, lag = flow.last_step(), flow.by_lag()
        ax_lag.semilogy(np.arange(len(last)), last, ".-", lw=0.8, label="‖∂L_T/∂h_t‖ against T − t")
        ax_lag.semilogy(np.arange(len(lag)), lag, lw=2, label="geometric mean over t of ‖∂L_t/∂h_{t−k}‖")
        ax_lag.set_xlabel("distance back, T − t (or k)")
        ax_lag.set_title(f"{label}: layer {flow.layer}")
        ax_lag.legend(fontsize=8)
        ax_lag.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def summary(flow: GradFlow, label: str) -> str:
    """A few numbers of the figure, for the terminal."""
    last = flow.last_step()
    lags = [k for k in (0, 1, 2, 5, 10, 20, 50, 100, 200) if k < len(last)]
    cells = "  ".join(f"{k}: {last[k]:.3g}" for k in lags)
    return (f"{label}: layer {flow.layer}, window of T = {flow.T}, mean loss {np.nanmean(flow.losses):.4f} nats/char\n"
            f"‖∂L_T/∂h_t‖ at T − t = {cells}")
