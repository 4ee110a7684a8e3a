"""Which genes matter: permutation importance over a random-forest surrogate of the history.

The surrogate is a random forest (Breiman 2001, "Random Forests", Machine Learning 45) fitted
to the evaluated architectures, genes as integer features, one objective as the target. Its
trees are scikit-learn's ``DecisionTreeRegressor``, each fitted to a bootstrap sample that is
drawn here, so that each tree's out-of-bag architectures are known:

- a gene's **importance** in one tree is how much the tree's squared error on its out-of-bag
  architectures grows when that gene's values are shuffled among them, divided by twice the
  target's variance (Breiman's permutation importance, scaled so that for an additive target
  it is the gene's share of the variance: 1 when the gene alone decides, 0 when the tree
  never needs it). The forest's importance is the mean over its trees; the
  spread over the trees is the uncertainty shown beside it.
- a **value's effect** is the surrogate's partial dependence (Friedman 2001, "Greedy function
  approximation", Ann. Statist. 29): the tree's mean prediction over architectures of the
  history with that gene set to the value, minus its mean prediction over them as they are;
  mean and spread over the trees again.
- the forest's out-of-bag R² says how much of the target the surrogate explains at all: when
  it is low, no ranking of genes means much.

scikit-learn is optional (the ``sklearn`` extra): without it :func:`gene_importance` raises
``ImportError`` with the command that installs it, and the report says so in place of the view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

MIN_ROWS = 8  # fewer successful evaluations than this give no ranking
TREES = 64
MAX_ROWS = 4_000  # a forest is fitted to at most this many rows (a fixed random subset beyond)
PD_ROWS = 256  # partial dependence averages over at most this many architectures
INSTALL = "pip install 'evonas[sklearn]'"


@dataclasses.dataclass(frozen=True)
class ValueEffect:
    """One value of a gene: how many evaluated architectures have it and its effect."""

    value: int
    label: str
    count: int
    effect: float
    std: float


@dataclasses.dataclass(frozen=True)
class GeneScore:
    """One gene's permutation importance (mean and spread over the trees) and its values."""

    gene: int
    name: str
    importance: float
    std: float
    values: tuple[ValueEffect, ...]


@dataclasses.dataclass(frozen=True)
class Importance:
    """The genes of one objective, most important first.

    Attributes:
        objective: the target's name.
        rows: the architectures the forest was fitted to.
        trees: the forest's size.
        r2: the forest's out-of-bag R² (NaN when the target does not vary).
        genes: one score per gene, ranked by importance (ties: genome order).
    """

    objective: str
    rows: int
    trees: int
    r2: float
    genes: tuple[GeneScore, ...]

    def as_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {
            "objective": self.objective, "rows": self.rows, "trees": self.trees,
            "r2": num(self.r2),
            "genes": [{"gene": g.gene, "name": g.name, "importance": num(g.importance),
                       "std": num(g.std),
                       "values": [{"value": v.value, "label": v.label, "count": v.count,
                                   "effect": num(v.effect), "std": num(v.std)}
                                  for v in g.values]}
                      for g in self.genes],
        }


def _tree_class() -> Any:
    try:
        from sklearn.tree import DecisionTreeRegressor
    except ImportError:
        raise ImportError(f"gene importance needs scikit-learn: {INSTALL}") from None
    return DecisionTreeRegressor


def gene_importance(genomes: Any, values: Any, names: Sequence[str],
                    labels: Sequence[Sequence[str] | None] | None = None, *,
                    objective: str = "fitness", trees: int = TREES,
                    seed: int = 0) -> Importance:
    """Ranks the genes by how much of ``values`` a random forest on them attributes to each.

    Args:
        genomes: ``int[N, G]``, the evaluated architectures.
        values: ``float[N]``, the objective of each (non-finite: left out, e.g. failed rows).
        names: the G gene names.
        labels: per gene the labels of its values (or None), for the value effects.
        objective: the objective's name, carried into the result.
        trees: the number of trees.
        seed: the seed of the bootstrap samples, permutations and subsets (same result for the
            same history).

    Returns:
        The genes ranked by importance, each with its values' effects.

    Raises:
        ImportError: scikit-learn is not installed (the message says how to install it).
        ValueError: fewer than :data:`MIN_ROWS` architectures with a finite value, or
            ``genomes`` and ``values`` whose shapes don't match.
    """
    tree_class = _tree_class()
    x = np.asarray(genomes, dtype=np.int64)
    y = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != len(names):
        raise ValueError(f"gene importance takes genomes int[N, {len(names)}] and values "
                         f"float[N]; got {x.shape} and {y.shape}")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    n, num_genes = x.shape
    if n < MIN_ROWS:
        raise ValueError(f"gene importance needs at least {MIN_ROWS} successful evaluations of "
                         f"{objective}; the history has {n}")
    rng = np.random.default_rng(seed)
    if n > MAX_ROWS:
        subset = np.sort(rng.choice(n, MAX_ROWS, replace=False))
        x, y, n = x[subset], y[subset], MAX_ROWS
    counts = [dict(zip(*np.unique(x[:, g], return_counts=True))) for g in range(num_genes)]
    observed = [np.array(sorted(c)) for c in counts]
    variance = float(y.var())
    pd_base = x[np.sort(rng.choice(n, min(n, PD_ROWS), replace=False))]
    design, offsets = _design(pd_base, observed)

    importance = np.full((trees, num_genes), np.nan)
    effects = np.full((trees, int(offsets[-1])), np.nan)
    errors = np.full(trees, np.nan)
    for t in range(trees):
        boot = rng.integers(0, n, n)
        oob = np.setdiff1d(np.arange(n), boot)
        tree = tree_class(random_state=int(rng.integers(2**31 - 1))).fit(x[boot], y[boot])
        grid = tree.predict(design).reshape(-1, len(pd_base)).mean(axis=1)
        effects[t] = grid - tree.predict(pd_base).mean()
        if len(oob) < 2 or variance <= 0:
            continue
        xo, yo = x[oob], y[oob]
        base = float(np.mean((tree.predict(xo) - yo) ** 2))
        errors[t] = base
        shuffled = np.repeat(xo[None], num_genes, 0)
        for g in range(num_genes):
            shuffled[g, :, g] = rng.permutation(xo[:, g])
        pred = tree.predict(shuffled.reshape(-1, num_genes)).reshape(num_genes, len(oob))
        # Shuffling an additive gene's values doubles its part of the error: halved, the
        # importance is that gene's share of the variance (the fANOVA main effect of an
        # additive target), so a gene that alone decides scores 1.
        importance[t] = (np.mean((pred - yo) ** 2, axis=1) - base) / (2.0 * variance)

    scored = ~np.isnan(importance[:, 0])
    mean = importance[scored].mean(axis=0) if scored.any() else np.zeros(num_genes)
    std = importance[scored].std(axis=0) if scored.any() else np.zeros(num_genes)
    r2 = 1.0 - float(np.nanmean(errors)) / variance if scored.any() else float("nan")
    genes = [GeneScore(g, str(names[g]), float(mean[g]), float(std[g]),
                       _value_effects(g, observed[g], counts[g], effects, offsets, labels))
             for g in range(num_genes)]
    genes.sort(key=lambda s: (-s.importance, s.gene))
    return Importance(objective, n, trees, r2, tuple(genes))


def _design(pd_base: np.ndarray, observed: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every (gene, value) copy of ``pd_base`` in one matrix (one predict call per tree), and
    where each gene's block starts."""
    design = np.concatenate([np.repeat(pd_base[None], len(vs), 0) for vs in observed]).copy()
    offsets = np.cumsum([0] + [len(vs) for vs in observed])
    for g, vs in enumerate(observed):
        design[offsets[g]:offsets[g + 1], :, g] = vs[:, None]
    return design.reshape(-1, pd_base.shape[1]), offsets


def _value_effects(g: int, observed: np.ndarray, counts: dict[Any, int], effects: np.ndarray,
                   offsets: np.ndarray, labels: Sequence[Sequence[str] | None] | None
                   ) -> tuple[ValueEffect, ...]:
    """Gene ``g``'s values with their partial-dependence effect (mean and spread over trees)."""
    gene_labels = labels[g] if labels is not None and g < len(labels) else None
    out = []
    for k, v in enumerate(observed):
        column = effects[:, offsets[g] + k]
        label = (gene_labels[v] if gene_labels is not None and 0 <= v < len(gene_labels)
                 else str(int(v)))
        out.append(ValueEffect(int(v), str(label), int(counts[v]), float(column.mean()),
                               float(column.std())))
    return tuple(out)
