"""Statistics of units over a long text, accumulated chunk by chunk (memory bounded by the width).

Which unit tracks a feature: Pearson's correlation between unit j's activation a_j(t) and a
feature f(t) over the N characters read,

    r_j = Σ (a_j − ā_j)(f − f̄) / sqrt(Σ (a_j − ā_j)² · Σ (f − f̄)²),      score = |r_j|

(for a 0/1 feature this is the point-biserial correlation), computed from running sums of a, a²,
f, f² and a·f, taken around a pivot (the first chunk's means) so that the sums do not cancel.
A unit or feature that is constant on the text has no correlation (r = 0; the feature's score is
None).

Gate saturation (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent
Networks", section 4.3): for every unit of a σ-gate, the share of the characters at which the
gate is left-saturated (< 0.1) and right-saturated (> 0.9).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

LEFT, RIGHT = 0.1, 0.9          # saturation thresholds of a σ-gate
TINY = 1e-12                    # a variance at most this (relative) counts as constant


class Correlations:
    """Running sums for r between every unit of every named activation and every feature."""

    def __init__(self, features: Sequence[str]):
        self.features = list(features)
        self.sums: dict[str, dict[str, Any]] = {}

    def add(self, name: str, A: np.ndarray, F: np.ndarray) -> None:
        """Add T characters: A (T, H) activations of `name`, F (T, len(features)) the features there."""
        A = np.asarray(A, dtype=np.float64)
        F = np.asarray(F, dtype=np.float64)
        s = self.sums.get(name)
        if s is None:
            pa, pf = A.mean(axis=0), F.mean(axis=0)
            s = self.sums[name] = {"n": 0, "pa": pa, "pf": pf, "a": 0.0, "aa": 0.0, "f": 0.0, "ff": 0.0, "af": 0.0}
        a, f = A - s["pa"], F - s["pf"]
        s["n"] += A.shape[0]
        s["a"] = s["a"] + a.sum(axis=0)
        s["aa"] = s["aa"] + (a * a).sum(axis=0)
        s["f"] = s["f"] + f.sum(axis=0)
        s["ff"] = s["ff"] + (f * f).sum(axis=0)
        s["af"] = s["af"] + a.T @ f

    def r(self, name: str) -> np.ndarray:
        """Pearson r (H, len(features)); 0 where the unit or the feature is constant."""
        s = self.sums[name]
        n = s["n"]
        va = s["aa"] - s["a"] ** 2 / n
        vf = s["ff"] - s["f"] ** 2 / n
        cov = s["af"] - np.outer(s["a"], s["f"]) / n
        ok_a = va > TINY * (s["aa"] + 1e-300)
        ok_f = vf > TINY * (s["ff"] + 1e-300)
        den = np.sqrt(np.outer(np.where(ok_a, va, 1.0), np.where(ok_f, vf, 1.0)))
        r = np.where(np.outer(ok_a, ok_f), cov / den, 0.0)
        return np.clip(r, -1.0, 1.0)

    def constant(self) -> np.ndarray:
        """Which features are constant over the characters added (bool, len(features))."""
        s = next(iter(self.sums.values()))
        vf = s["ff"] - s["f"] ** 2 / s["n"]
        return ~(vf > TINY * (s["ff"] + 1e-300))

    def best(self, runners_up: int = 3) -> list[dict[str, Any]]:
        """Per feature, the unit with the largest |r| over every name (ties: the earlier name, then
        the lower unit), with the next best: [{"feature", "name", "unit", "r", "score", "next": [...]}]."""
        names = list(self.sums)
        rs = np.concatenate([self.r(n) for n in names], axis=0)            # (Σ H, F)
        owner = [(n, j) for n in names for j in range(self.sums[n]["aa"].shape[0])]
        const = self.constant()
        out = []
        for k, feat in enumerate(self.features):
            if const[k]:
                out.append({"feature": feat, "name": None, "unit": None, "r": None, "score": None, "next": []})
                continue
            order = np.argsort(-np.abs(rs[:, k]), kind="stable")[: 1 + runners_up]
            picks = [{"name": owner[i][0], "unit": owner[i][1], "r": float(rs[i, k]), "score": float(abs(rs[i, k]))}
                     for i in order]
            out.append({"feature": feat, **picks[0], "next": picks[1:]})
        return out


class Saturation:
    """Running counts of left- and right-saturated steps of every σ-gate unit."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}
        self.left: dict[str, np.ndarray] = {}
        self.right: dict[str, np.ndarray] = {}

    def add(self, name: str, G: np.ndarray) -> None:
        """Add T characters of the gate `name`: G (T, H) values in (0, 1)."""
        G = np.asarray(G)
        self.n[name] = self.n.get(name, 0) + G.shape[0]
        self.left[name] = self.left.get(name, 0) + (G < LEFT).sum(axis=0)
        self.right[name] = self.right.get(name, 0) + (G > RIGHT).sum(axis=0)

    def shares(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(left share, right share), each (H,): the fraction of characters below 0.1 and above 0.9."""
        n = max(1, self.n[name])
        return self.left[name] / n, self.right[name] / n


def saturation_of(gates: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Gate saturation of whole arrays at once: name -> (left share, right share)."""
    s = Saturation()
    for name, G in gates.items():
        s.add(name, G)
    return {name: s.shares(name) for name in gates}
