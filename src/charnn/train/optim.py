"""Optimizers (SGD with optional momentum, Adam) and gradient clipping, updating in place.

Conventions follow torch.optim so the two can be compared step for step:
  SGD:      buf = μ buf + g (buf = g on the first step);  p −= lr · buf   (μ = 0: p −= lr · g)
  Adam:     m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;
            p −= lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)
"""
from __future__ import annotations

import math
from typing import Any, Mapping, MutableMapping

from ..backend import to_numpy, xp_of


def clip_by_value(grads: MutableMapping[str, Any], lo: float, hi: float) -> None:
    """Clip every gradient element to [lo, hi] in place (the seed: GRAD_MIN=−5, GRAD_MAX=5)."""
    for g in grads.values():
        xp_of(g).clip(g, lo, hi, out=g)


def global_norm(grads: Mapping[str, Any]) -> float:
    """‖g‖₂ over all parameters together."""
    # vdot: the sum of squares without a temporary the size of g
    return math.sqrt(sum(float(xp_of(g).vdot(g.ravel(), g.ravel())) for g in grads.values()))


def clip_by_global_norm(grads: MutableMapping[str, Any], max_norm: float) -> float:
    """Rescale all gradients so their joint L2 norm is at most max_norm; returns the norm before.

    Same rule as torch.nn.utils.clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6)).
    """
    norm = global_norm(grads)
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= scale
    return norm


class Optimizer:
    """Base: a learning rate, a step counter and per-parameter state arrays."""

    kind = "base"

    def __init__(self, lr: float):
        self.lr = lr
        self.t = 0
        self.state: dict[str, dict[str, Any]] = {}

    def step(self, params: MutableMapping[str, Any], grads: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, Any]:
        """Flat name -> array map of the state (for checkpoints): e.g. 'm.W', 'v.W'."""
        return {f"{slot}.{name}": arr for slot, per in self.state.items() for name, arr in per.items()}

    def load_state_arrays(self, arrays: Mapping[str, Any], t: int) -> None:
        self.t = int(t)
        self.state = {}
        for key, arr in arrays.items():
            slot, name = key.split(".", 1)
            self.state.setdefault(slot, {})[name] = arr

    def hyper(self) -> dict[str, Any]:
        return {"kind": self.kind, "lr": self.lr, "t": self.t}


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (heavy-ball) momentum."""

    kind = "sgd"

    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr)
        self.momentum = momentum

    def step(self, params: MutableMapping[str, Any], grads: Mapping[str, Any]) -> None:
        self.t += 1
        if self.momentum == 0.0:
            for k, p in params.items():
                p -= self.lr * grads[k]
            return
        bufs = self.state.setdefault("buf", {})
        for k, p in params.items():
            g = grads[k]
            if k not in bufs:
                bufs[k] = g.copy()
            else:
                buf = bufs[k]
                buf *= self.momentum
                buf += g
            p -= self.lr * bufs[k]

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "momentum": self.momentum}


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba, 2015); with weight_decay > 0, AdamW's decoupled decay.

        m ← β1 m + (1 − β1) g        v ← β2 v + (1 − β2) g²
        θ ← θ (1 − lr·λ)   for weight matrices only (λ = weight_decay; biases are not decayed)
        θ ← θ − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)

    The decay is decoupled from the gradient (Loshchilov & Hutter, 2019; torch.optim.AdamW): it
    shrinks the weights toward 0 by the same fraction whatever their gradient scale, which an L2
    term added to the loss would not do under Adam's per-element step normalisation.
    """

    kind = "adam"

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay
        self._scratch_arrays: dict[tuple, Any] = {}   # work arrays by shape (not state, never saved)

    def step(self, params: MutableMapping[str, Any], grads: Mapping[str, Any]) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        m_all = self.state.setdefault("m", {})
        v_all = self.state.setdefault("v", {})
        bc1 = 1.0 - b1 ** self.t
        bc2 = 1.0 - b2 ** self.t
        step_size = self.lr / bc1
        sqrt_bc2 = math.sqrt(bc2)
        for k, p in params.items():
            g = grads[k]
            xp = xp_of(p)
            if k not in m_all:
                m_all[k] = xp.zeros_like(p)
                v_all[k] = xp.zeros_like(p)
            m, v = m_all[k], v_all[k]
            # Every intermediate goes through one reused scratch array (`out=`): the same operations
            # in the same order as the plain expressions, so bit-identical, but without the five
            # fresh temporaries per parameter and step, which for a megabyte-sized matrix are each
            # a new mapping of pages to fault in.
            buf = self._scratch(xp, p)
            if self.weight_decay and p.ndim >= 2:
                p *= 1.0 - self.lr * self.weight_decay
            m *= b1
            xp.multiply(g, 1.0 - b1, out=buf)
            m += buf
            v *= b2
            xp.multiply(g, g, out=buf)
            buf *= 1.0 - b2
            v += buf
            xp.sqrt(v, out=buf)                              # denominator √v / √(1−β2ᵗ) + ε
            buf /= sqrt_bc2
            buf += self.eps
            xp.divide(m, buf, out=buf)
            buf *= step_size
            p -= buf

    def _scratch(self, xp: Any, p: Any) -> Any:
        """A work array shaped like p (one per shape and dtype; not optimizer state, never saved)."""
        key = (xp.__name__, p.shape, p.dtype.str)
        if key not in self._scratch_arrays:
            self._scratch_arrays[key] = xp.empty_like(p)
        return self._scratch_arrays[key]

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


def make_optimizer(kind: str, lr: float, *, momentum: float = 0.0, beta1: float = 0.9,
                   beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """SGD or Adam by name (weight_decay: Adam's decoupled decay, AdamW; SGD refuses it)."""
    if kind == "sgd":
        if weight_decay:
            raise ValueError("weight decay is implemented for adam only")
        return SGD(lr, momentum)
    if kind == "adam":
        return Adam(lr, beta1, beta2, eps, weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}: choose adam or sgd")


def state_to_numpy(opt: Optimizer) -> dict[str, Any]:
    return {k: to_numpy(v) for k, v in opt.state_arrays().items()}
