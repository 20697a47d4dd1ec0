"""Certified removal for a linear model on (approximate) graph embeddings.

The model (Guo et al., 2020, as used by CGU and ScaleGUN) is one-vs-rest logistic
regression with **loss perturbation**: for class ``k`` with labels ``s_ik = ±1``

    L_k(w) = Σ_{i∈train} log(1 + exp(−s_ik wᵀz_i)) + (λm/2)‖w‖² + b_kᵀw,   b_k ~ N(0, α²I),

``m`` the number of training rows. After a removal that turns the data ``D`` into ``D'``
the **Newton step** ``w ← w + H⁻¹Δ`` with ``Δ = ∇L(w; D) − ∇L(w; D')`` and
``H = ∇²L(w; D')`` approximates retraining. If the *gradient residual* of the result on
``D'`` is at most ``ε'`` and ``α ≥ c ε'/ε`` with ``c = √(2 ln(1.5/δ))``, the released
model is (ε, δ)-indistinguishable from retraining. The released model is all ``C``
columns, perturbed by one ``F × C`` noise matrix, so ``ε'`` bounds the Frobenius norm of
the ``F × C`` gradient residual: with per-class bounds ``β_k`` the model has
``√(Σ_k β_k²)`` against the **budget** ``α ε / c`` (checking each class alone would only
certify about ``√C · ε``). When a removal would exceed it, the model is retrained from
scratch with fresh noise.

Bounds accounted here, per class, then combined:

* the **data-dependent Newton bound** ``γ ‖Z'‖₂ ‖Z'Δw‖_∞ ‖Z'Δw‖₂`` (γ = ¼), summed over
  the removals since the last (re)training, plus the training's own final gradient norm
  (L-BFGS is not an exact minimiser);
* the **approximation term** for embeddings that are not exact: with ``Ẑ`` the lazy
  embedding and ``Z`` the exact one, ``‖∇L(w; Z) − ∇L(w; Ẑ)‖ ≤ (1 + γ₁‖w‖ max_i‖z_i‖)
  Σ_j E_j``, ``γ₁ = ¼`` the Lipschitz constant of the logistic ``ℓ'``, ``|ℓ'| ≤ 1`` and
  ``E_j ≥ ‖Z_j − Ẑ_j‖₁`` the per-column error bound of the lazy propagation; or, for
  ``β = ½``, the tighter ``‖Z − Ẑ‖_F (√m + γ₁‖w‖‖Ẑ‖₂)`` (the smaller of the two). It is
  recomputed from the current state at every request (not accumulated), and is an upper
  bound, not the signed residue sum of the authors' code.

Hessian solves use Cholesky factorisations, in the primal ``F × F`` form or, when the
training rows are fewer than the features, in the dual ``m × m`` form (Woodbury):
``H⁻¹v = (v − Zᵀ(λm D⁻¹ + ZZᵀ)⁻¹Zv) / (λm)``. No matrix is inverted explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["preprocess", "noise_budget", "CertifiedLinear", "StepRecord", "GAMMA"]

GAMMA = 0.25  # Lipschitz constant of the logistic loss's second derivative (as in the papers' code)
GAMMA1 = 0.25  # Lipschitz constant of its first derivative


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """Standardise every column, then divide by the largest row norm: ``‖x_i‖₂ ≤ 1``. ``(N, F)``."""
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-12)
    x = (x - mean) / std
    return x / x.norm(dim=1).max().clamp_min(1e-12)


def noise_budget(alpha: float, eps: float, delta: float) -> float:
    """The largest admissible gradient residual, ``α ε / c`` with ``c = √(2 ln(1.5/δ))``."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    if eps <= 0 or alpha <= 0:
        raise ValueError(f"eps and alpha must be positive, got eps={eps}, alpha={alpha}")
    return alpha * eps / math.sqrt(2 * math.log(1.5 / delta))


@dataclass
class StepRecord:
    """What one removal request cost and did to the certificate.

    Per class (tensors ``(C,)``, kept for figures): ``newton_bound``, ``accumulated``,
    ``approximation`` and ``total = accumulated + approximation``. The released model is
    all ``C`` columns with one ``F × C`` noise matrix, so the certificate is on the
    **model**: ``model_total = ‖total‖₂ = √(Σ_k total_k²)`` (a bound on the Frobenius norm
    of the ``F × C`` gradient residual) against ``budget``. ``causes`` says why the request
    flushed the lazy embeddings or retrained.
    """

    newton_bound: torch.Tensor
    accumulated: torch.Tensor
    approximation: torch.Tensor
    total: torch.Tensor
    budget: float
    retrained: bool
    flushed: bool = False
    causes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def model_total(self) -> float:
        """``√(Σ_k total_k²)``: the bound on the released model's gradient residual."""
        return float(self.total.norm())

    @property
    def certified(self) -> bool:
        """The model-level bound within the budget. False only when the approximation term
        alone exceeds it and could not be flushed: retraining cannot help, the embeddings
        must be made more exact (:meth:`~graphtrust.unlearning.LazyPropagation.flush`, or a
        smaller ``r_max``)."""
        return self.model_total <= self.budget


class CertifiedLinear:
    """One-vs-rest logistic regression with loss perturbation and certified Newton removals.

    ``lam`` is λ, ``alpha`` the noise scale, ``(eps, delta)`` the certificate. Labels are class
    ids ``(N,)``; the training rows are given by index.
    """

    def __init__(self, num_classes: int, lam: float = 1e-2, alpha: float = 0.1, eps: float = 1.0,
                 delta: float = 1e-4, max_iter: int = 100, seed: int = 0):
        if lam <= 0:
            raise ValueError(f"lam must be positive, got {lam}")
        self.budget = noise_budget(alpha, eps, delta)
        self.C, self.lam, self.alpha, self.eps, self.delta = num_classes, lam, alpha, eps, delta
        self.max_iter = max_iter
        self.gen = torch.Generator().manual_seed(seed)
        self.w: torch.Tensor | None = None
        self.b: torch.Tensor | None = None
        self.accumulated: torch.Tensor | None = None
        self.retrains = 0

    # ------------------------------------------------------------------ objective
    def _signs(self, y: torch.Tensor) -> torch.Tensor:
        return 2.0 * F.one_hot(y, self.C).double() - 1.0

    def gradient(self, w: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``∇L(w)`` for every class, ``(F, C)``; ``z: (m, F)`` training rows, ``y: (m,)``."""
        s = self._signs(y)
        coef = -s * torch.sigmoid(-s * (z @ w))  # ℓ'(s wᵀz) · s
        return z.t() @ coef + self.lam * z.size(0) * w + self.b

    def loss(self, w: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = self._signs(y)
        return (F.softplus(-s * (z @ w)).sum() + 0.5 * self.lam * z.size(0) * (w * w).sum()
                + (self.b * w).sum())

    def solve(self, w: torch.Tensor, z: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``H_k⁻¹ v_k`` for every class (``v: (F, C)``) by Cholesky, primal or dual form."""
        m, f = z.shape
        s = self._signs(y)
        p = torch.sigmoid(s * (z @ w))
        dk = (p * (1 - p)).clamp_min(1e-12)  # (m, C) Hessian weights
        lm = self.lam * m
        out = torch.empty_like(v)
        if f <= m:
            for k in range(self.C):
                h = z.t() @ (dk[:, k : k + 1] * z)
                h.diagonal().add_(lm)
                out[:, k] = torch.cholesky_solve(v[:, k : k + 1], torch.linalg.cholesky(h)).view(-1)
        else:
            gram = z @ z.t()
            zv = z @ v
            for k in range(self.C):
                kk = gram.clone()
                kk.diagonal().add_(lm / dk[:, k])
                t = torch.cholesky_solve(zv[:, k : k + 1], torch.linalg.cholesky(kk))
                out[:, k] = ((v[:, k : k + 1] - z.t() @ t) / lm).view(-1)
        return out

    # ------------------------------------------------------------------ training
    def fit(self, z: torch.Tensor, y: torch.Tensor) -> CertifiedLinear:
        """Train on ``z: (m, F)``, ``y: (m,)`` with fresh noise ``b``; resets the accounting."""
        z = z.double()
        f = z.size(1)
        self.b = self.alpha * torch.randn(f, self.C, generator=self.gen, dtype=torch.float64)
        w = torch.zeros(f, self.C, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1.0, max_iter=self.max_iter, tolerance_grad=1e-10,
                                tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = self.loss(w, z, y)
            loss.backward()
            return loss

        opt.step(closure)
        self.w = w.detach()
        # one Newton step from the L-BFGS point makes the residual tiny and is accounted for
        g = self.gradient(self.w, z, y)
        self.w = self.w - self.solve(self.w, z, y, g)
        self.accumulated = self.gradient(self.w, z, y).norm(dim=0)  # what training left over
        return self

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return (z.double() @ self.w).argmax(1)

    def accuracy(self, z: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(z) == y).double().mean())

    # ------------------------------------------------------------------ removal
    def approximation_term(self, z_hat: torch.Tensor, column_error: torch.Tensor | None,
                           w: torch.Tensor | None = None, frobenius: float | None = None) -> torch.Tensor:
        """Per class, a bound on ``‖∇L_k(w; Z) − ∇L_k(w; Ẑ)‖`` over the training rows: how far
        the gradient on the lazy embedding ``z_hat`` (training rows) can be from the one on the
        exact embedding. ``w`` defaults to the current weights.

        Two valid bounds, the smaller is used:

        * **L1** (``column_error``, ``E_j ≥ ‖Z_j − Ẑ_j‖₁``):
          ``(1 + γ₁‖w_k‖ max_i‖z_i‖) Σ_j E_j``, from ``|ℓ'| ≤ 1`` and ``ℓ'`` γ₁-Lipschitz;
        * **L2** (``frobenius ≥ ‖Z − Ẑ‖_F``, β = ½): ``‖E‖_F (√m + γ₁‖w_k‖‖Ẑ‖₂)``: the gap is
          ``Eᵀa + Ẑᵀc`` with ``|a_i| ≤ 1`` and ``|c_i| ≤ γ₁|e_iᵀw_k|``, so it is at most
          ``‖E‖₂‖a‖₂ + ‖Ẑ‖₂ γ₁ ‖E w_k‖₂``.
        """
        w = self.w if w is None else w
        total = 0.0 if column_error is None else float(column_error.sum())
        if total == 0.0 and not frobenius:
            return torch.zeros(self.C, dtype=torch.float64)
        wn = w.norm(dim=0)
        out = torch.full((self.C,), math.inf, dtype=torch.float64)
        if column_error is not None:
            row_max = float(z_hat.norm(dim=1).max()) + total  # ‖z_i‖ ≤ ‖ẑ_i‖ + ‖z_i − ẑ_i‖
            out = (1.0 + GAMMA1 * wn * row_max) * total
        if frobenius is not None:
            l2 = frobenius * (math.sqrt(z_hat.size(0)) + GAMMA1 * wn * _spectral_norm(z_hat.double()))
            out = torch.minimum(out, l2)
        return out

    def newton_step(self, z_old: torch.Tensor, y_old: torch.Tensor, z_new: torch.Tensor,
                    y_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Newton step ``H⁻¹Δ: (F, C)`` and its data-dependent bound per class.

        The residual after the step is ``Z'ᵀr`` with ``|r_i| ≤ γ (z_iᵀΔw)²``, so its norm is
        at most ``γ ‖Z'‖₂ ‖Z'Δw‖_∞ ‖Z'Δw‖₂``. This needs no bound on the row norms
        ``‖z_i‖`` (with ``‖z_i‖ ≤ 1`` it is at most Guo et al.'s ``γ ‖Z'‖₂ ‖Δw‖₂ ‖Z'Δw‖₂``).
        """
        delta = self.gradient(self.w, z_old, y_old) - self.gradient(self.w, z_new, y_new)
        step = self.solve(self.w, z_new, y_new, delta)
        zs = z_new @ step
        return step, GAMMA * _spectral_norm(z_new) * zs.abs().amax(0) * zs.norm(dim=0)

    def remove(self, z_old: torch.Tensor, y_old: torch.Tensor, z_new: torch.Tensor, y_new: torch.Tensor,
               column_error: torch.Tensor | None = None, flush=None, frobenius: float | None = None) -> StepRecord:
        """One certified removal: the training data goes from ``(z_old, y_old)`` to
        ``(z_new, y_new)`` (rows may disappear, embeddings may change).

        In order: the Newton step and its bound, added to the accumulated one; the
        approximation term of the stepped model for ``column_error`` (the per-column error
        bound of approximate embeddings) and ``frobenius`` (a bound on their Frobenius error;
        see :meth:`approximation_term`). If the model-level total exceeds the budget and
        the approximation term is non-zero, ``flush()`` (if given) makes the embeddings
        exact and returns ``(z_new, column_error, frobenius)`` for the same rows; the step is then
        taken from ``z_old`` to those (the accounting telescopes along the sequence of
        embeddings, whichever they are). If the total still exceeds the budget, the model
        is retrained with fresh noise. :attr:`StepRecord.causes` records each decision.
        """
        if self.w is None:
            raise RuntimeError("fit the model before removing data")
        d = self.w.size(0)
        for name, z, y in (("z_old", z_old, y_old), ("z_new", z_new, y_new)):
            if z.dim() != 2 or z.size(1) != d:
                raise ValueError(f"{name} has shape {tuple(z.shape)}; the model was fitted on {d} features "
                                 "(embeddings of another graph or propagation?)")
            if y.shape != (z.size(0),):
                raise ValueError(f"{name} has {z.size(0)} rows but its labels have shape {tuple(y.shape)}")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.C):
                raise ValueError(f"labels of {name} must lie in 0..{self.C - 1}")
        if column_error is not None and column_error.shape != (d,):
            raise ValueError(f"column_error has shape {tuple(column_error.shape)}, expected ({d},)")
        z_old, z_new = z_old.double(), z_new.double()
        causes: list[str] = []
        step, newton = self.newton_step(z_old, y_old, z_new, y_new)
        acc = self.accumulated + newton
        approx = self.approximation_term(z_new, column_error, self.w + step, frobenius)
        flushed = False
        if float((acc + approx).norm()) > self.budget and bool((approx > 0).any()) and flush is not None:
            causes.append(f"flush: the bound {float((acc + approx).norm()):.3g} exceeded the budget "
                          f"{self.budget:.3g} with an approximation term of {float(approx.norm()):.3g}")
            z_new, column_error, frobenius = flush()
            z_new = z_new.double()
            flushed = True
            step, newton = self.newton_step(z_old, y_old, z_new, y_new)
            acc = self.accumulated + newton
            approx = self.approximation_term(z_new, column_error, self.w + step, frobenius)
        total = acc + approx
        retrained = float(total.norm()) > self.budget
        if retrained:
            alone = float(approx.norm()) > self.budget
            causes.append(f"retrain: {'the approximation term alone' if alone else 'the accumulated bound'} "
                          f"({float(total.norm()):.3g}) exceeded the budget {self.budget:.3g}")
            self.fit(z_new, y_new)
            self.retrains += 1
            acc = self.accumulated
            approx = self.approximation_term(z_new, column_error, frobenius=frobenius)
            total = acc + approx
        else:
            self.w = self.w + step
            self.accumulated = acc
        return StepRecord(newton, acc.clone(), approx, total, self.budget, retrained, flushed, causes)


def _spectral_norm(z: torch.Tensor) -> float:
    """``‖z‖₂``, exactly: the largest eigenvalue of the smaller Gram matrix (``zᵀz`` or ``zzᵀ``).

    A power iteration would approach it from below, which is the wrong side for a bound.
    """
    gram = z.t() @ z if z.size(1) <= z.size(0) else z @ z.t()
    return math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0))
