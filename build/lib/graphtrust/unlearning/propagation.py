"""Generalised-PageRank embeddings, exact and lazily maintained under removals (ScaleGUN).

The embedding of a graph with adjacency ``A`` (self-loops included), degrees ``D`` and
features ``X: (N, F)`` is

    Z = Σ_{ℓ=0..L} w_ℓ P^ℓ X,   P = D^{-β} A D^{β-1},

``β = ½`` giving the symmetric ``D^{-1/2}(A+I)D^{-1/2}`` (ScaleGUN) and ``β = 1`` the
random-walk ``D^{-1}(A+I)`` (CGU's setting).

:class:`LazyPropagation` keeps, in the *scaled* coordinates of the authors' code, a
reserve ``q_ℓ`` and a residue ``r_ℓ`` per level with the invariant

    q_0 + r_0 = D^β X,    q_ℓ + r_ℓ = A D^{-1} q_{ℓ-1}  (ℓ = 1..L),    r_L = 0,

and the embedding ``Ẑ = D^{-β} Σ w_ℓ q_ℓ``. The error is then (unrolling the invariant)

    Z − Ẑ = Σ_ℓ w_ℓ Σ_{t≤ℓ} D^{-β} (A D^{-1})^{ℓ-t} r_t,

and since ``A D^{-1}`` is column-stochastic and ``d ≥ 1``, every feature column ``j``
obeys ``‖Z_j − Ẑ_j‖₁ ≤ Σ_ℓ |w_ℓ| Σ_{t≤ℓ} ‖r_{t,j}‖₁`` (:meth:`LazyPropagation.error_bound`):
a bound computed from the residues' absolute mass, valid for any ``β ∈ [0, 1]``.

A *push* at level ``ℓ < L`` moves a node's residue into its reserve and spreads
``r_ℓ(s)/d(s)`` to the level-``ℓ+1`` residues of its neighbours (to the reserve when
``ℓ+1 = L``); it keeps the invariant. Levels only feed the next one, so pushing every node
with ``max_j |r_ℓ(s, j)| > r_max`` level by level, ``ℓ = 0..L-1``, leaves all residues
below ``r_max``. We push whole frontiers at once (one sparse gather per level), which
runs unchanged on a GPU.

Removals are repaired locally: an edge removal changes the degrees of its endpoints; we
rescale their reserves by ``d_new/d_old`` (so that the ratio ``q/d`` their neighbours read
is unchanged), subtract what the removed neighbours had contributed, and put the
difference into the residues; the push then propagates it. Node removal deletes all edges
of the node (it keeps its self-loop); feature removal sets the node's feature row to zero.

Pure torch (CSR arrays and ``index_add_``), no compiled extension: the per-level frontier
push is a handful of vectorised gathers, fast enough at ogbn-arxiv scale on a CPU (see
``python -m graphtrust.bench scalegun``) and device-agnostic. The graph is kept as a
fixed CSR with an ``alive`` mask, so removals never re-allocate it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..threads import adapt

__all__ = ["Graph", "exact_embedding", "LazyPropagation", "sgc_weights", "SGC2"]


def sgc_weights(levels: int = 2) -> tuple[float, ...]:
    """``w = (0, …, 0, 1)``: the SGC embedding ``P^L X`` (the paper's experiments, ``L = 2``)."""
    return tuple([0.0] * levels + [1.0])


SGC2 = sgc_weights(2)  #: the paper's setting, ``w = (0, 0, 1)``


class Graph:
    """An undirected graph with self-loops as a CSR whose edges can be switched off.

    ``edge_index: (2, E)`` may be directed or undirected, with or without self-loops; it is
    made symmetric, self-loops are added, duplicates dropped.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, device: torch.device | str | None = None):
        from torch_geometric.utils import coalesce, to_undirected

        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index holds node ids outside 0..{num_nodes - 1}")
        ei = to_undirected(edge_index.cpu(), num_nodes=num_nodes)
        ei = ei[:, ei[0] != ei[1]]
        loops = torch.arange(num_nodes).repeat(2, 1)
        ei = coalesce(torch.cat([ei, loops], 1), num_nodes=num_nodes)
        dev = torch.device(device) if device is not None else edge_index.device
        self.num_nodes = num_nodes
        self.row = ei[0].to(dev)
        self.col = ei[1].to(dev)
        self.indptr = torch.ops.aten._convert_indices_from_coo_to_csr(ei[0], num_nodes).to(dev)
        self.keys = self.row * num_nodes + self.col  # sorted (row-major CSR)
        self.alive = torch.ones(ei.size(1), dtype=torch.bool, device=dev)
        self.deg = torch.bincount(ei[0], minlength=num_nodes).to(dev)

    @property
    def device(self) -> torch.device:
        return self.row.device

    @property
    def num_edges(self) -> int:
        """Undirected edges alive, self-loops excluded."""
        return int((self.alive & (self.row != self.col)).sum()) // 2

    def clone(self) -> Graph:
        g = object.__new__(Graph)
        g.num_nodes = self.num_nodes
        g.row, g.col, g.indptr, g.keys = self.row, self.col, self.indptr, self.keys  # immutable
        g.alive, g.deg = self.alive.clone(), self.deg.clone()
        return g

    def edge_positions(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """CSR positions of the directed entries ``(u_i, v_i)``; ``-1`` where absent or dead."""
        lo, hi = self.indptr[u], self.indptr[u + 1]
        # binary search of v in each sorted row
        key = u * self.num_nodes + v
        pos = torch.searchsorted(self.keys, key)
        pos = pos.clamp(max=self.col.numel() - 1)
        ok = (pos >= lo) & (pos < hi) & (self.col[pos] == v) & self.alive[pos]
        return torch.where(ok, pos, torch.full_like(pos, -1))

    def neighbours(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index into ``nodes``, neighbour id) for every alive entry of their rows (self-loops too)."""
        start, end = self.indptr[nodes], self.indptr[nodes + 1]
        counts = end - start
        src = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts)
        offsets = torch.arange(int(counts.sum()), device=nodes.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        pos = torch.repeat_interleave(start, counts) + offsets
        keep = self.alive[pos]
        return src[keep], self.col[pos[keep]]

    def locate_edges(self, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate undirected ``edges: (k, 2)`` and return both directions ``(u, v, pos)``.

        Raises for a self-loop, a missing or already removed edge, an id out of range or an
        edge listed twice; changes nothing.
        """
        edges = torch.as_tensor(edges, dtype=torch.long, device=self.device).view(-1, 2)
        if int(edges.min()) < 0 or int(edges.max()) >= self.num_nodes:
            raise ValueError(f"edge endpoints must lie in 0..{self.num_nodes - 1}")
        if bool((edges[:, 0] == edges[:, 1]).any()):
            raise ValueError("self-loops cannot be removed (they are part of the propagation)")
        lo, hi = edges.min(1).values, edges.max(1).values
        if torch.unique(lo * self.num_nodes + hi).numel() != edges.size(0):
            raise ValueError("an edge is listed twice in the batch")
        u = torch.cat([edges[:, 0], edges[:, 1]])
        v = torch.cat([edges[:, 1], edges[:, 0]])
        pos = self.edge_positions(u, v)
        if bool((pos < 0).any()):
            bad = edges[(pos[: edges.size(0)] < 0)][0].tolist()
            raise ValueError(f"edge {tuple(bad)} does not exist (or was already removed)")
        return u, v, pos

    def incident_edges(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All alive edges touching ``nodes`` (self-loops excluded), both directions ``(u, v, pos)``."""
        src, nbr = self.neighbours(nodes)
        u = nodes[src]
        keep = u != nbr
        u, v = u[keep], nbr[keep]
        key = torch.unique(torch.minimum(u, v) * self.num_nodes + torch.maximum(u, v))
        a, b = key // self.num_nodes, key % self.num_nodes
        uu, vv = torch.cat([a, b]), torch.cat([b, a])
        return uu, vv, self.edge_positions(uu, vv)

    def switch_off(self, u: torch.Tensor, pos: torch.Tensor) -> None:
        """Remove the directed entries at ``pos`` (rows ``u``) and update the degrees."""
        self.alive[pos] = False
        self.deg.index_add_(0, u, torch.full_like(u, -1))

    def check_nodes(self, nodes, done: set[int], what: str) -> torch.Tensor:
        """Validate node ids (range, duplicates, not in ``done``); returns them as a tensor."""
        nodes = torch.as_tensor(nodes, dtype=torch.long, device=self.device).view(-1)
        if nodes.numel() == 0:
            return nodes
        if int(nodes.min()) < 0 or int(nodes.max()) >= self.num_nodes:
            raise ValueError(f"node ids must lie in 0..{self.num_nodes - 1}")
        if torch.unique(nodes).numel() != nodes.numel():
            raise ValueError("a node is listed twice")
        again = set(nodes.tolist()) & done
        if again:
            raise ValueError(f"{what} of node(s) {sorted(again)[:5]} were already removed")
        return nodes

    def adjacency(self, dtype=torch.float64) -> torch.Tensor:
        """The current ``A`` (self-loops included) as a sparse CSR ``(N, N)`` tensor.

        Built in O(E) from the fixed CSR and the ``alive`` mask (no sorting).
        """
        import warnings

        keep = self.alive
        counts = torch.bincount(self.row[keep], minlength=self.num_nodes)
        indptr = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
        indptr[1:] = torch.cumsum(counts, 0)
        col = self.col[keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(indptr, col, torch.ones(col.numel(), dtype=dtype, device=self.device),
                                           (self.num_nodes, self.num_nodes))

    def edge_index(self) -> torch.Tensor:
        """Alive undirected edges as ``(2, 2E)`` without self-loops."""
        keep = self.alive & (self.row != self.col)
        return torch.stack([self.row[keep], self.col[keep]])


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    w = tuple(float(v) for v in weights)
    if len(w) < 2:
        raise ValueError("weights need at least two levels (w_0, …, w_L with L >= 1)")
    return w


def exact_embedding(graph: Graph, x: torch.Tensor, weights: Sequence[float] = SGC2, beta: float = 0.5
                    ) -> torch.Tensor:
    """``Z = Σ_ℓ w_ℓ P^ℓ X`` by sparse products on the graph's current edges. ``(N, F)``."""
    w = _check_weights(weights)
    a = graph.adjacency(x.dtype)
    d = graph.deg.to(x.dtype)[:, None]
    q = d.pow(beta) * x
    z = w[0] * q
    for lvl in range(1, len(w)):
        q = a @ (q / d)
        if w[lvl]:
            z = z + w[lvl] * q
    return z / d.pow(beta)


class LazyPropagation:
    """Reserves and residues of a GPR embedding, repaired locally under removals.

    ``x: (N, F)`` (already preprocessed), ``r_max > 0`` the push threshold (absolute, in the
    scaled coordinates). The state starts *exact* (``r = 0``, computed by sparse products):
    removals create residues, and only those above ``r_max`` are pushed.

    Every method that changes the state validates its input first and leaves the state
    untouched when it raises.
    """

    def __init__(self, graph: Graph, x: torch.Tensor, r_max: float, weights: Sequence[float] = SGC2,
                 beta: float = 0.5):
        if not r_max > 0:
            raise ValueError(f"r_max must be positive, got {r_max}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if x.size(0) != graph.num_nodes:
            raise ValueError(f"x has {x.size(0)} rows for a graph of {graph.num_nodes} nodes")
        self.graph = graph
        self.w = _check_weights(weights)
        self.L = len(self.w) - 1
        self.beta = beta
        self.r_max = float(r_max)
        self.removed_nodes: set[int] = set()
        self.cleared_features: set[int] = set()
        self.pushes = 0
        dev, dt = graph.device, x.dtype
        x = x.to(dev)
        d = graph.deg.to(dt)[:, None]
        a = graph.adjacency(dt)
        self.q = [d.pow(beta) * x]
        for _ in range(self.L):
            self.q.append(a @ (self.q[-1] / d))
        self.r = [torch.zeros_like(x) for _ in range(self.L)]  # r_L ≡ 0 is not stored
        self._cache: dict[str, torch.Tensor | None] = {}

    # ------------------------------------------------------------------ reading
    @property
    def embedding(self) -> torch.Tensor:
        """``Ẑ = D^{-β} Σ_ℓ w_ℓ q_ℓ``, ``(N, F)`` (cached until the state changes; do not modify)."""
        if self._cache.get("embedding") is None:
            d = self.graph.deg.to(self.q[0].dtype)[:, None]
            z = None
            for w, q in zip(self.w, self.q):
                if w:
                    z = w * q if z is None else z + w * q
            self._cache["embedding"] = (z if z is not None else torch.zeros_like(self.q[0])) / d.pow(self.beta)
        return self._cache["embedding"]

    def features(self) -> torch.Tensor:
        """The features the state encodes, ``(q_0 + r_0) / D^β``."""
        d = self.graph.deg.to(self.q[0].dtype)[:, None]
        return (self.q[0] + self.r[0]) / d.pow(self.beta)

    def residue_mass(self) -> torch.Tensor:
        """``‖r_{ℓ, j}‖₁`` per level and column, ``(L, F)`` (cached until the state changes)."""
        if self._cache.get("mass") is None:
            self._cache["mass"] = torch.stack([r.abs().sum(0) for r in self.r])
        return self._cache["mass"]

    def error_bound(self) -> torch.Tensor:
        """Per column ``j``, an upper bound on ``‖Z_j − Ẑ_j‖₁`` (hence on the 2-norm), ``(F,)``.

        ``Σ_ℓ |w_ℓ| Σ_{t ≤ min(ℓ, L-1)} ‖r_{t,j}‖₁`` — see the module docstring.
        """
        mass = self.residue_mass()
        cum = torch.cumsum(mass, 0)  # Σ_{t≤ℓ}
        bound = torch.zeros_like(mass[0])
        for lvl, w in enumerate(self.w):
            if w:
                bound = bound + abs(w) * cum[min(lvl, self.L - 1)]
        return bound

    def frobenius_bound(self) -> float | None:
        """For ``β = ½``, an upper bound on ``‖Z − Ẑ‖_F``: ``Σ_ℓ |w_ℓ| Σ_{t ≤ min(ℓ, L-1)} ‖D^{-½} r_t‖_F``.

        With ``β = ½``, ``D^{-½}(A D^{-1})^k = P^k D^{-½}`` for the symmetric
        ``P = D^{-½} A D^{-½}``, whose spectral norm is 1, so every term of the error
        ``Σ_ℓ w_ℓ Σ_{t≤ℓ} D^{-β}(A D^{-1})^{ℓ-t} r_t`` has Frobenius norm at most
        ``‖D^{-½} r_t‖_F``. ``None`` for other ``β`` (``D^{-β}(AD^{-1})^k`` is not a
        contraction in the 2-norm then).
        """
        if self.beta != 0.5:
            return None
        if self._cache.get("fro") is None:
            d = self.graph.deg.to(self.q[0].dtype)[:, None].rsqrt()
            norms = [float((d * r).norm()) for r in self.r]
            cum = [sum(norms[: t + 1]) for t in range(self.L)]
            self._cache["fro"] = sum(abs(w) * cum[min(lvl, self.L - 1)] for lvl, w in enumerate(self.w))
        return self._cache["fro"]

    def invariant_error(self) -> float:
        """Largest violation of the invariant (should be round-off), for tests."""
        g = self.graph
        dt = self.q[0].dtype
        d = g.deg.to(dt)[:, None]
        a = g.adjacency(dt)
        x = self.features()
        worst = float((self.q[0] + self.r[0] - d.pow(self.beta) * x).abs().max())
        for lvl in range(1, self.L + 1):
            rhs = a @ (self.q[lvl - 1] / d)
            lhs = self.q[lvl] + (self.r[lvl] if lvl < self.L else 0)
            worst = max(worst, float((lhs - rhs).abs().max()))
        return worst

    # ------------------------------------------------------------------ pushing
    def push(self, candidates: torch.Tensor | None = None) -> int:
        """Push, level by level, every node whose residue exceeds ``r_max``; returns the pushes.

        ``candidates`` (node ids) restricts the level-0 search to the nodes whose residues
        may have changed; later levels search the nodes that received mass. ``None``: all.
        """
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        self._cache.clear()
        g = self.graph
        dt = self.q[0].dtype
        pushes = 0
        received = torch.empty(0, dtype=torch.long, device=g.device)
        for lvl in range(self.L):
            r = self.r[lvl]
            if candidates is None:
                big = (r.abs() > self.r_max).any(1).nonzero().view(-1)
            else:  # the repaired nodes (residues at every level) and those that received mass
                pool = torch.unique(torch.cat([candidates, received]))
                big = pool[(r[pool].abs() > self.r_max).any(1)]
            if big.numel() == 0:
                received = received[:0]
                continue
            pushes += big.numel()
            mass = r[big]
            self.q[lvl][big] += mass
            r[big] = 0
            src, nbr = g.neighbours(big)
            share = mass / g.deg[big].to(dt)[:, None]
            target = self.q[self.L] if lvl + 1 == self.L else self.r[lvl + 1]
            target.index_add_(0, nbr, share[src])
            received = nbr
        self.pushes += pushes
        return pushes

    def flush(self) -> int:
        """Push every non-zero residue (threshold 0): the state becomes exact. Returns pushes."""
        r_max, self.r_max = self.r_max, 0.0
        try:
            return self.push()
        finally:
            self.r_max = r_max

    # ------------------------------------------------------------------ removals
    def remove_edges(self, edges: torch.Tensor, push: bool = True) -> torch.Tensor:
        """Remove undirected edges ``edges: (k, 2)`` (a batch); returns the affected nodes.

        Raises (state unchanged) for a self-loop, an edge that does not exist or was
        removed, a node id out of range, or an edge listed twice.
        """
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        if torch.as_tensor(edges).numel() == 0:
            return torch.empty(0, dtype=torch.long, device=self.graph.device)
        u, v, pos = self.graph.locate_edges(edges)
        self._apply_removal(u, v, pos)
        affected = torch.unique(u)
        if push:
            self.push(affected)
        return affected

    def remove_nodes(self, nodes: Sequence[int] | torch.Tensor, push: bool = True) -> torch.Tensor:
        """Remove every edge of ``nodes`` (each keeps only its self-loop); returns affected nodes.

        Raises (state unchanged) for an id out of range or a node removed before or listed twice.
        """
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        nodes = self.graph.check_nodes(nodes, self.removed_nodes, "the edges")
        if nodes.numel() == 0:
            return nodes
        uu, vv, pos = self.graph.incident_edges(nodes)
        if uu.numel():
            self._apply_removal(uu, vv, pos)
        self.removed_nodes.update(nodes.tolist())
        affected = torch.unique(torch.cat([nodes, uu]))
        if push:
            self.push(affected)
        return affected

    def remove_features(self, nodes: Sequence[int] | torch.Tensor, push: bool = True) -> torch.Tensor:
        """Set the feature rows of ``nodes`` to zero (edges stay); returns the nodes."""
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        nodes = self.graph.check_nodes(nodes, self.cleared_features, "the features")
        if nodes.numel() == 0:
            return nodes
        self._cache.clear()
        self.r[0][nodes] = -self.q[0][nodes]
        self.cleared_features.update(nodes.tolist())
        if push:
            self.push(nodes)
        return nodes

    def _apply_removal(self, u: torch.Tensor, v: torch.Tensor, pos: torch.Tensor) -> None:
        """Switch off directed entries ``(u_i, v_i)`` at CSR ``pos`` and repair the invariant."""
        self._cache.clear()
        g = self.graph
        dt = self.q[0].dtype
        affected = torch.unique(u)
        d_old = g.deg.to(dt).clone()
        # what each removed neighbour v contributed to u at every level ℓ ≥ 1: q_{ℓ-1}(v)/d(v)
        removed = []
        for lvl in range(1, self.L + 1):
            contrib = torch.zeros(affected.numel(), self.q[0].size(1), dtype=dt, device=g.device)
            idx = torch.searchsorted(affected, u)
            contrib.index_add_(0, idx, self.q[lvl - 1][v] / d_old[v][:, None])
            removed.append(contrib)
        g.switch_off(u, pos)
        do = d_old[affected][:, None]
        dn = g.deg[affected].to(dt)[:, None]
        ratio = dn / do
        # level 0: keep x(s); rescale q_0 so that q_0/d is unchanged
        x_s = (self.q[0][affected] + self.r[0][affected]) / do.pow(self.beta)
        q0 = self.q[0][affected] * ratio
        self.q[0][affected] = q0
        self.r[0][affected] = x_s * dn.pow(self.beta) - q0
        for lvl in range(1, self.L + 1):
            q_old = self.q[lvl][affected]
            if lvl < self.L:
                q_new = q_old * ratio
                self.q[lvl][affected] = q_new
                self.r[lvl][affected] += (q_old - q_new) - removed[lvl - 1]
            else:  # the top level keeps no residue: fold the correction into the reserve
                self.q[lvl][affected] = q_old - removed[lvl - 1]
