"""Few-shot supernets: the one-shot supernet split on one gene (Zhao et al. 2021, "Few-shot
Neural Architecture Search", ICML).

One shared supernet makes every architecture compete for the same weights, which blurs the
ranking among good architectures most: on NAS-Bench-201 a uniform single-path supernet ranks all
cells at Kendall tau 0.48 but no better than chance inside the true top decile. Splitting on one
gene gives each of its choices a sub-supernet of its own, so architectures that differ in that
gene no longer share (or fight over) weights. Each sub-supernet starts from the trained one-shot
weights and trains on the architectures with its choice only; an architecture is scored with the
sub-supernet of its choice.

Which gene: the one whose choice moves the one-shot score most (:func:`gene_importance`: the
variance, across a gene's choices, of the mean one-shot validation accuracy of ``samples``
random architectures), among genes with at most ``max_choices`` choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.data.batches import batch_indices
from evonas.train.cache import ProgramCache
from evonas.train.config import TrainConfig, library_options
from evonas.train.oneshot import (
    SupernetState,
    _options,
    _supernet_step,
    path_forward,
    score_population,
)


def gene_importance(encoding: Any, params: Any, dataset: Any, key: jax.Array, *,
                    samples: int = 64, eval_batch_size: int = 1024, max_choices: int = 8,
                    cache: ProgramCache | None = None) -> np.ndarray:
    """How much each gene's choice moves the one-shot validation accuracy: ``float64[G]``, the
    variance across the gene's choices of the mean score of ``samples`` random architectures
    (each choice weighted by how many drew it); NaN for a gene with one choice or more than
    ``max_choices``."""
    genomes = np.asarray(encoding.space.sample(key, samples))
    scores = score_population(encoding, params, genomes, dataset, eval_batch_size,
                              cache=cache)["val_acc"].astype(np.float64)
    scores = np.where(np.isfinite(scores), scores, np.nanmin(scores))
    out = np.full(encoding.space.num_genes, np.nan)
    for gene, card in enumerate(np.asarray(encoding.space.cardinalities)):
        if not 2 <= card <= max_choices:
            continue
        values = genomes[:, gene]
        means = np.array([scores[values == v].mean() for v in range(card) if (values == v).any()])
        counts = np.array([(values == v).sum() for v in range(card) if (values == v).any()])
        out[gene] = float(np.sum(counts * (means - scores.mean()) ** 2) / counts.sum())
    return out


def split_gene(importance: np.ndarray) -> int:
    """The gene to split on: the most important one.

    Raises:
        ValueError: no gene can be split (every one has one choice or too many).
    """
    if not np.isfinite(importance).any():
        raise ValueError("few-shot: no gene of this space can be split (each has one choice or "
                         "more than max_choices); use the one-shot evaluator")
    return int(np.nanargmax(importance))


def train_sub_supernets(key: jax.Array, encoding: Any, dataset: Any, config: TrainConfig,
                        params: Any, gene: int, steps: int, *,
                        load: Callable[[int, Any], Any | None] | None = None,
                        save: Callable[[int, Any], None] | None = None) -> list[Any]:
    """One sub-supernet per choice of ``gene``, each from ``params`` (the one-shot weights),
    trained ``steps`` uniformly sampled single-path steps on architectures with that choice.

    One compiled program serves every sub-supernet (the choice is in its sampled genomes, an
    argument). Sub-supernet ``k`` draws its architectures and batches from ``fold_in(key, k)``,
    so a run killed between two of them retrains none twice and ends with the same weights.

    Args:
        load: ``load(k, like)`` returns sub-supernet ``k``'s kept parameters or None.
        save: ``save(k, params)`` keeps them once trained.

    Raises:
        FloatingPointError: a sub-supernet's loss stopped being finite.
    """
    options = _options(config, steps)
    optimizer = options.optimizer_fn()
    spc = config.steps_per_call
    calls = -(-steps // spc)
    one = _supernet_step(path_forward(encoding), optimizer, jnp.asarray(dataset.x_train),
                         jnp.asarray(dataset.y_train), steps, options.label_smoothing)
    call = jax.jit(lambda state, idx, genomes: jax.lax.scan(one, state, (idx, genomes)),
                   compiler_options=library_options(config.xla))
    card = int(np.asarray(encoding.space.cardinalities)[gene])
    subs = []
    for choice in range(card):
        kept = load(choice, params) if load is not None else None
        if kept is not None:
            subs.append(kept)
            continue
        k_sample, k_batch = jax.random.split(jax.random.fold_in(key, choice))
        genomes = encoding.space.sample(k_sample, calls * spc).at[:, gene].set(choice)
        indices = batch_indices(k_batch, len(dataset.y_train), config.batch_size, calls * spc)
        state = SupernetState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
        for t0 in range(0, calls * spc, spc):
            state, losses = call(state, indices[t0:t0 + spc], genomes[t0:t0 + spc])
            loss = float(jnp.sum(losses))
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"few-shot sub-supernet {choice} of gene {gene}: the loss became {loss} in "
                    f"steps {t0}..{t0 + spc}; lower train.learning_rate (now "
                    f"{config.learning_rate})")
        sub = jax.tree.map(np.asarray, state.params)
        if save is not None:
            save(choice, sub)
        subs.append(sub)
    return subs


def score_few_shot(encoding: Any, subs: list[Any], gene: int, genomes: np.ndarray,
                   dataset: Any, eval_batch_size: int, splits: tuple[str, ...] = ("val",),
                   cache: ProgramCache | None = None) -> dict[str, np.ndarray]:
    """:func:`~evonas.train.oneshot.score_population`, each genome with the sub-supernet of
    its choice of ``gene``. Each choice's genomes are padded (with copies of the first) to a
    power of two, so the one compiled scorer sees a few population sizes, not one per split."""
    genomes = np.asarray(genomes, np.int32)
    out: dict[str, np.ndarray] = {}
    for choice, params in enumerate(subs):
        rows = np.flatnonzero(genomes[:, gene] == choice)
        if not len(rows):
            continue
        size = 1 << int(np.ceil(np.log2(len(rows))))
        padded = genomes[np.concatenate([rows, np.full(size - len(rows), rows[0])])]
        scored = score_population(encoding, params, padded, dataset, eval_batch_size, splits,
                                  cache=cache)
        for name, values in scored.items():
            out.setdefault(name, np.full(len(genomes), np.nan, np.float32))[rows] = \
                values[:len(rows)]
    return out
