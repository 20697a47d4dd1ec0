"""GraphDLG: structure first, then features (Wei et al., 2026), as built in this library.

1. **closed form** — the label (negative entry of the last bias gradient) and the pooled
   embedding ``h_G = ∇W₁[j]/∇b₁[j]`` (:mod:`.leaks`);
2. **structure** — edge scores ``S`` from a :class:`~.decoder.StructureDecoder` trained on
   auxiliary graphs (random or client-side); the structure used downstream is ``Â``, the
   top-``m`` pairs of ``S`` with ``m`` the decoder's expected edge count;
3. **features** — the closed-form recursion given ``Â`` (:func:`~.leaks.closed_form_features`,
   least squares layer by layer; the unknown top activation mask is read from the decoder's
   feature guess), then gradient matching over ``X`` with ``Â`` fixed, the label fixed and
   the leaked ``h_G`` as an extra term (:func:`~.matching.match`), started from whichever
   of the closed form and the decoder's guess matches the gradient better.

``refine_structure=True`` adds a last joint gradient-matching pass over ``S`` and ``X``
started from the decoder's scores — an option of ours, off by default, measured in the
chapter's ablation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .decoder import StructureDecoder, observation
from .leaks import check_gradients, closed_form_features, recover_label, recover_pooled
from .matching import Reconstruction, gradient_distance, gradient_of, match
from .model import GraphClassifier

__all__ = ["graphdlg", "top_edges"]


def top_edges(scores: torch.Tensor, m: int) -> torch.Tensor:
    """The 0/1 symmetric adjacency of the ``m`` highest-scoring pairs of ``scores: (n, n)``."""
    n = scores.size(0)
    iu = torch.triu_indices(n, n, 1, device=scores.device)
    s = scores[iu[0], iu[1]]
    keep = torch.topk(s, min(max(m, 0), s.numel())).indices
    a = scores.new_zeros(n, n)
    a[iu[0, keep], iu[1, keep]] = 1.0
    return a + a.t()


def _features_from_closed_form(model, grads, adj, guess, onehot):
    """The closed-form recursion given ``adj``, with the top mask of the guess; ``None``
    when it cannot run (a layer narrower than the graph). Projected onto the simplex
    row-wise for one-hot features (clip at 0, renormalise)."""
    top = model.node_states(adj, guess)[-2] > 0 if model.last_activation else None
    try:
        x = closed_form_features(model, grads, adj, top_mask=top, strict=False)
    except ValueError:
        return None
    if not torch.isfinite(x).all():
        return None
    if onehot:
        x = x.clamp_min(0)
        x = torch.where(x.sum(1, keepdim=True) > 0, x / x.sum(1, keepdim=True).clamp_min(1e-12), guess)
    return x.to(guess.dtype)


def graphdlg(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int, decoder: StructureDecoder, *,
             onehot: bool = True, iters: int = 100, closed_form: bool = True, refine_features: bool = True,
             refine_structure: bool = False, seed: int = 0) -> Reconstruction:
    """Reconstruct ``(S, X, y)`` from a single-graph gradient (see the module docstring)."""
    grads = check_gradients(model, grads)
    t0 = time.perf_counter()
    dt = next(model.parameters()).dtype
    label = recover_label(model, grads)
    pooled = recover_pooled(model, grads)
    scores, guess = decoder.decode(observation(model, grads, num_nodes), num_nodes)
    scores, guess = scores.to(dt), guess.to(dt)
    m = int(round(float(scores.triu(1).sum())))
    adj = top_edges(scores, max(m, num_nodes - 1))
    info = {"edges_used": int(adj.sum()) // 2, "start": "decoder"}
    x = guess
    if closed_form:
        cf = _features_from_closed_form(model, grads, adj, guess, onehot)
        if cf is not None:
            target = torch.nn.functional.one_hot(torch.tensor(label), model.num_classes).to(dt)

            def dist(z):
                return float(gradient_distance(gradient_of(model, adj, z, target, create_graph=False), grads))

            if dist(cf) < dist(guess):
                x, info["start"] = cf, "closed form"
    if refine_features:
        r = match(model, grads, num_nodes, adj=adj, x_init=x, label=label, onehot=onehot, iters=iters, seed=seed,
                  pooled=pooled)
        x = r.x
        info["feature_loss"] = r.info["final_loss"]
    if refine_structure:
        logits = torch.logit(scores.clamp(1e-4, 1 - 1e-4))
        r = match(model, grads, num_nodes, adj_logits=logits, x_init=x, label=label, onehot=onehot, iters=iters,
                  seed=seed, pooled=pooled)
        scores, x = r.adj, r.x
        info["joint_loss"] = r.info["final_loss"]
    return Reconstruction(scores, x, label, time.perf_counter() - t0, info)
