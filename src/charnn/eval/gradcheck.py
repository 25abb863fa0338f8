"""Finite-difference gradient check of the hand-written backward pass, in float64.

For each checked element θ_i the numerical derivative is the fourth-order centred difference

    ∂L/∂θ_i ≈ [−L(θ+2h) + 8 L(θ+h) − 8 L(θ−h) + L(θ−2h)] / (12 h),    h = 1e-3 · max(1, |θ_i|)

whose truncation error is O(h⁴) (≈1e-12) and rounding error ≈ ε·|L|/h (≈1e-13), so the check
can demand agreement to better than 1e-6. The relative error of an element is

    |g_analytic − g_numeric| / max(|g_analytic|, |g_numeric|, floor)

where the floor (1e-6) stops gradients that are zero up to rounding from dividing noise by noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import model

FLOOR = 1e-6
TOLERANCE = 1e-6


@dataclass
class GradCheckRow:
    name: str
    shape: tuple[int, ...]
    checked: int
    max_rel_error: float
    max_abs_error: float

    @property
    def passed(self) -> bool:
        return self.max_rel_error < TOLERANCE


def _numeric(f: Callable[[], float], arr: np.ndarray, idx: tuple[int, ...]) -> float:
    old = arr[idx]
    h = 1e-3 * max(1.0, abs(old))
    vals = []
    for delta in (2 * h, h, -h, -2 * h):
        arr[idx] = old + delta
        vals.append(f())
    arr[idx] = old
    return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)


def check_arrays(f: Callable[[], float], arrays: Mapping[str, np.ndarray], analytic: Mapping[str, np.ndarray], *,
                 max_checks: int | None = None, seed: int = 0) -> list[GradCheckRow]:
    """Compare `analytic[name]` with finite differences of f() w.r.t. each array (perturbed in place).

    max_checks: check at most this many elements per array (chosen at random); None = all.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for name, arr in arrays.items():
        if arr.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 arrays; {name} is {arr.dtype}")
        n = arr.size
        flat_ids = np.arange(n) if max_checks is None or n <= max_checks else rng.choice(n, max_checks, replace=False)
        worst_rel, worst_abs = 0.0, 0.0
        for fi in flat_ids:
            idx = np.unravel_index(int(fi), arr.shape)
            num = _numeric(f, arr, idx)
            ana = float(analytic[name][idx])
            err = abs(ana - num)
            worst_abs = max(worst_abs, err)
            worst_rel = max(worst_rel, err / max(abs(ana), abs(num), FLOOR))
        rows.append(GradCheckRow(name, tuple(arr.shape), len(flat_ids), worst_rel, worst_abs))
    return rows


def gradcheck(params: Mapping[str, np.ndarray], inputs: np.ndarray, targets: np.ndarray, h0: np.ndarray | None = None,
              *, max_checks: int | None = None, seed: int = 0, masks: Sequence[np.ndarray] | None = None,
              weight_masks: Mapping[str, np.ndarray] | None = None) -> list[GradCheckRow]:
    """Check every parameter's gradient and dL/dh0 against finite differences.

    Any network (`charnn.model`), with fixed dropout `masks` or weight-drop `weight_masks` if
    given (fixed, so the loss is a deterministic function of θ). h0 has the network's state
    layout (None = zeros).
    """
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    B = np.asarray(inputs).shape[0]
    masks = None if masks is None else [np.asarray(m, dtype=np.float64) for m in masks]
    wm = None if not weight_masks else {k: np.asarray(m, dtype=np.float64) for k, m in weight_masks.items()}
    h0 = model.init_state(params, B) if h0 is None else np.array(h0, dtype=np.float64)
    _, grads, dh0 = model.loss_grads_dh0(params, inputs, targets, h0, masks=masks, weight_masks=wm)

    def f() -> float:
        return model.forward(params, inputs, targets, h0, masks=masks, weight_masks=wm)[0]

    analytic = {**grads, "h0": dh0}
    arrays = {**params, "h0": h0}
    return check_arrays(f, arrays, analytic, max_checks=max_checks, seed=seed)


def format_table(rows: list[GradCheckRow]) -> str:
    """The table `charnn gradcheck` prints."""
    lines = [f"{'parameter':<10} {'shape':<12} {'checked':>8} {'max rel error':>14}  result"]
    for r in rows:
        lines.append(f"{r.name:<10} {str(r.shape):<12} {r.checked:>8} {r.max_rel_error:>14.3e}  "
                     f"{'pass' if r.passed else 'FAIL'}")
    return "\n".join(lines)
