"""GraphDLG: structure first, then features (Wei et al., 2026), as built in this library.

1. **closed form** — the label (negative entry of the last bias gradient) and the pooled
   embedding ``h_G = ∇W₁[j]/∇b₁[j]`` (:mod:`.leaks`);
2. **structure** — candidates from a :class:`~.decoder.StructureDecoder` trained on
   auxiliary graphs (random or client-side): its own output (the top-``m`` pairs of its
   scores, ``m`` its expected edge count, with its feature guess) and the ``retrieval``
   auxiliary graphs of the victim's size whose simulated gradients are closest
   (:func:`~.decoder.retrieve`). *Analysis by synthesis*: the candidate whose gradient is
   closest to the shared one gives the structure ``Â``; the edge scores ``S`` are the
   candidates' adjacencies, aligned to it and averaged with weights ``exp(−d_j/d_best)``,
   plus a small share of the decoder's scores so that pairs no candidate has are ranked too;
3. **features** — the closed-form recursion given ``Â`` (:func:`~.leaks.closed_form_features`,
   least squares layer by layer; the unknown top activation mask is read from the best
   candidate's features), then gradient matching over ``X`` with ``Â`` fixed, the label
   fixed and the leaked ``h_G`` as an extra term (:func:`~.matching.match`), started from
   whichever of the closed form and the candidate's features matches the gradient better.

``refine_structure=True`` adds a last joint gradient-matching pass over ``S`` and ``X``
started from the scores — an option of ours, off by default, measured in the chapter's
ablation. Retrieval and the analysis-by-synthesis choice are our reading of "auxiliary
graphs enhance the recovery": the paper's method section was not available to us.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .decoder import StructureDecoder, observation, retrieve
from .leaks import check_gradients, closed_form_features, recover_label, recover_pooled
from .matching import Reconstruction, gradient_distance, gradient_of, match
from .metrics import align
from .model import GraphClassifier

__all__ = ["graphdlg", "top_edges", "decoded_candidate", "FEATURE_STAGES"]

FEATURE_STAGES = ("candidate", "closed-form", "matching", "closed-form+matching", "random+matching")


def top_edges(scores: torch.Tensor, m: int) -> torch.Tensor:
    """The 0/1 symmetric adjacency of the ``m`` highest-scoring pairs of ``scores: (n, n)``."""
    n = scores.size(0)
    iu = torch.triu_indices(n, n, 1, device=scores.device)
    s = scores[iu[0], iu[1]]
    keep = torch.topk(s, min(max(m, 0), s.numel())).indices
    a = scores.new_zeros(n, n)
    a[iu[0, keep], iu[1, keep]] = 1.0
    return a + a.t()


def decoded_candidate(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int,
                      decoder: StructureDecoder, onehot: bool = True):
    """The decoder's reading of a gradient as a graph of ``num_nodes`` nodes: its edge
    scores ``(n, n)``, feature probabilities ``(n, F)``, and the candidate graph they give
    (the top pairs, as many as the scores sum to and at least ``n − 1``; arg-max one-hot
    features when ``onehot``), in the model's dtype."""
    dt = next(model.parameters()).dtype
    scores, guess = decoder.decode(observation(model, grads, num_nodes), num_nodes)
    scores, guess = scores.to(dt), guess.to(dt)
    m = int(round(float(scores.triu(1).sum())))
    adj = top_edges(scores, max(m, num_nodes - 1))
    x = torch.nn.functional.one_hot(guess.argmax(1), guess.size(1)).to(dt) if onehot else guess
    return scores, guess, adj, x


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
             onehot: bool = True, iters: int = 100, retrieval: int = 5, features: str = "closed-form+matching",
             refine_structure: bool = False, decoder_share: float = 0.05, bank=None, seed: int = 0) -> Reconstruction:
    """Reconstruct ``(S, X, y)`` from a single-graph gradient (see the module docstring).

    ``retrieval=0`` uses the learned decoder alone; ``bank`` replaces the decoder's own
    auxiliary graphs for retrieval. ``features`` chooses the feature stage: ``"candidate"``
    (the best candidate's features), ``"closed-form"`` (the recursion, kept when it matches
    the gradient better), ``"matching"`` (gradient matching from the candidate's features),
    ``"closed-form+matching"`` (the default: matching from the better of the two) or
    ``"random+matching"`` (matching from a random start).
    """
    if features not in FEATURE_STAGES:
        raise ValueError(f"features must be one of {', '.join(FEATURE_STAGES)}, got {features!r}")
    if num_nodes > decoder.n_max:
        raise ValueError(f"{num_nodes} nodes: the decoder was built for at most {decoder.n_max}")
    grads = check_gradients(model, grads)
    t0 = time.perf_counter()
    dt = next(model.parameters()).dtype
    label = recover_label(model, grads)
    pooled = recover_pooled(model, grads)
    target = torch.nn.functional.one_hot(torch.tensor(label), model.num_classes).to(dt)

    def dist(a, z):
        return float(gradient_distance(gradient_of(model, a, z, target, create_graph=False), grads))

    scores, guess, dec_adj, dec_x = decoded_candidate(model, grads, num_nodes, decoder, onehot)
    cands = [(dec_adj, guess, dist(dec_adj, dec_x), "decoder")]
    if retrieval > 0:
        bank = getattr(decoder, "bank", []) if bank is None else bank
        cands += [(a.to(dt), x.to(dt), d, "retrieved") for a, x, d in
                  retrieve(model, grads, bank, num_nodes, label, k=retrieval)]
    cands.sort(key=lambda c: c[2])
    adj, x, d_best, source = cands[0]
    # soft scores: the candidates aligned to the best one, weighted by how well they match
    w_sum = 0.0
    s_vote = torch.zeros_like(scores)
    for a, xc, d, _ in cands:
        w = float(torch.exp(torch.tensor(-d / max(d_best, 1e-12))))
        perm = torch.as_tensor(align(adj, x, a, xc, tie_break="structure"))  # best-candidate node i ↦ node perm[i] of a
        s_vote += w * a[perm][:, perm]
        w_sum += w
    if source != "decoder":  # the decoder's soft scores, in the best candidate's node order
        perm = torch.as_tensor(align(adj, x, dec_adj, guess, tie_break="structure"))
        scores = scores[perm][:, perm]
    s_dec = scores
    scores = (1 - decoder_share) * s_vote / w_sum + decoder_share * s_dec
    info = {"edges_used": int(adj.sum()) // 2, "structure_from": source, "structure_distance": d_best,
            "candidates": len(cands), "start": source}
    if features.startswith("closed-form"):
        cf = _features_from_closed_form(model, grads, adj, x, onehot)
        if cf is not None and dist(adj, cf) < dist(adj, x):
            x, info["start"] = cf, "closed form"
    if features.endswith("matching"):
        r = match(model, grads, num_nodes, adj=adj, x_init=None if features == "random+matching" else x,
                  label=label, onehot=onehot, iters=iters, seed=seed, pooled=pooled)
        x = r.x
        info["feature_loss"] = r.info["final_loss"]
    if refine_structure:
        logits = torch.logit(scores.clamp(1e-4, 1 - 1e-4))
        r = match(model, grads, num_nodes, adj_logits=logits, x_init=x, label=label, onehot=onehot, iters=iters,
                  seed=seed, pooled=pooled)
        scores, x = r.adj, r.x
        info["joint_loss"] = r.info["final_loss"]
    return Reconstruction(scores, x, label, time.perf_counter() - t0, info)
