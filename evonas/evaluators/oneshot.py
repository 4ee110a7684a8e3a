"""``OneShotEvaluator``: fitness from one weight-sharing supernet (single-path one-shot)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks, streams
from evonas.evaluators.base import Results, fitness_metric
from evonas.objectives import metrics as metric_table
from evonas.store import ParamStore
from evonas.train import ProgramCache, TrainConfig
from evonas.train.oneshot import (
    SupernetResult,
    SupernetState,
    check_one_shot,
    score_population,
    train_supernet,
)

_STATE = "state"  # the supernet's kept training state, in the store
WARM_START = "warm_start"  # an earlier run's supernet parameters (search.warm_start), kept here


class OneShotEvaluator:
    """Scores architectures with the weights of one supernet trained by uniform single-path
    sampling (:mod:`evonas.train.oneshot`); no architecture trains on its own.

    The supernet trains on the first :meth:`evaluate` (or :meth:`supernet`) call, for
    ``supernet_steps`` steps with ``config``'s optimiser, learning rate, batch size and steps
    per call; its state is kept in ``store`` every tenth of the way and at the end, so a run
    killed while or after training it resumes without training it again (and to the same
    weights). A warm-started run's store holds the earlier run's supernet parameters
    (:data:`WARM_START`): training starts from them, leaf by leaf where the shapes agree (a head
    for another number of classes starts fresh).

    Args:
        encoding: a trainable encoding with a supernet (``single_path`` makes it fast).
        dataset: an ``evonas.data.Dataset``.
        config: training options of the supernet.
        supernet_steps: steps of supernet training.
        key: the supernet's key (initialisation, sampled architectures, batches).
        fitness: the metric returned as fitness (``val_acc``, ``val_loss``, ...).
        store: where the supernet's state is kept (an ``evonas.store.ParamStore``), or None
            (:meth:`attach` sets the run directory's ``supernet/``).
        cache: where the compiled scorer is kept between generations.

    Attributes:
        trained: the :class:`~evonas.train.oneshot.SupernetResult` once trained (or loaded).
    """

    protocol = "one-shot (single-path supernet)"
    estimate = "oneshot"
    warm_supernet = True  # a warm-started run hands it the earlier run's supernet

    def __init__(self, encoding: Any, dataset: Any, config: TrainConfig | None = None,
                 supernet_steps: int = 4000, key: jax.Array | None = None,
                 fitness: str = "val_acc", store: Any = None,
                 cache: ProgramCache | None = None):
        check_one_shot(encoding)
        config = config if config is not None else TrainConfig()
        checks.positive_int("OneShotEvaluator.supernet_steps", supernet_steps)
        fitness_metric("OneShotEvaluator", fitness, config, exclude=("train_loss",))
        self.encoding = encoding
        self.dataset = dataset
        self.config = config
        self.supernet_steps = int(supernet_steps)
        self.key = key if key is not None else jax.random.key(0)
        self.fitness = fitness
        self.maximize = metric_table.maximize(fitness)
        self.store = store
        self.cache = cache if cache is not None else ProgramCache(config.max_programs)
        self.trained: SupernetResult | None = None
        self.warm_leaves: tuple[int, int] | None = None  # (taken from the earlier run, all)

    def attach(self, root: Any, key: jax.Array) -> None:
        """Keeps the supernet's state in the run directory ``root``'s ``supernet/`` and trains
        it from the experiment's supernet stream of the seed key ``key``."""
        if self.trained is not None:
            raise RuntimeError("the supernet is already trained; attach before evaluating")
        self.store = ParamStore(root.supernet, root.root)
        self.key = streams.stream(key, "supernet")

    def _load(self, like: SupernetState) -> SupernetState | None:
        if self.store is None:
            return None
        kept = self.store.load(_STATE, like._asdict())
        if kept is None:
            return None
        state = SupernetState(**kept)
        if not 0 <= int(state.step) <= self.supernet_steps:
            raise ValueError(f"the kept supernet state is at step {int(state.step)}, outside "
                             f"0..{self.supernet_steps}; the run directory is damaged")
        return state

    def _save(self, state: SupernetState) -> None:
        if self.store is not None:
            self.store.save(_STATE, state._asdict())

    def supernet(self) -> Any:
        """The trained supernet's max-bounds parameters (trains, or loads, on first use)."""
        if self.trained is None:
            self.trained = train_supernet(self.key, self.encoding, self.dataset, self.config,
                                          self.supernet_steps, load=self._load, save=self._save,
                                          init=self._warm)
        return self.trained.params

    def _warm(self, params: Any) -> Any:
        """``params`` with the leaves of an earlier run's supernet (:data:`WARM_START` in the
        store) where their paths, shapes and types agree."""
        earlier = None if self.store is None else self.store.load_arrays(WARM_START)
        if earlier is None:
            return params
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        leaves, taken = [], 0
        for path, leaf in flat:
            got = earlier.get("['params']" + jax.tree_util.keystr(path))
            same = got is not None and got.shape == leaf.shape and got.dtype == leaf.dtype
            leaves.append(jnp.asarray(got) if same else leaf)
            taken += same
        self.warm_leaves = (taken, len(flat))
        return jax.tree.unflatten(treedef, leaves)

    def _score(self, genomes: np.ndarray, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Each genome's metrics on ``splits`` with the supernet's weights."""
        return score_population(self.encoding, self.supernet(), genomes, self.dataset,
                                self.config.eval_batch_size, splits, cache=self.cache)

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Scores ``genomes`` (``int32[P, G]``) with the supernet's weights; ``key`` is unused
        (scoring is deterministic)."""
        genomes = np.asarray(genomes, np.int32)
        splits = ("val", "test") if self.config.evaluate_test else ("val",)
        measured = self._score(genomes, splits)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in measured.items()}
        fitness = metrics[self.fitness]
        return Results(fitness=fitness, objectives={self.fitness: fitness}, metrics=metrics,
                       costs={}, failed=~jnp.isfinite(fitness),
                       fidelity=jnp.zeros(len(genomes), jnp.int32))

    def describe(self) -> dict[str, Any]:
        """What the supernet cost, for logs and benchmarks."""
        warm = {} if self.warm_leaves is None else {"warm_start_leaves": list(self.warm_leaves)}
        if self.trained is None:
            return {"supernet_steps": self.supernet_steps, "trained": False}
        return {"trained": True, **warm, **{k: v for k, v in dataclasses.asdict(
            self.trained).items() if k != "params"}}


class FewShotEvaluator(OneShotEvaluator):
    """Scores architectures with few-shot supernets (:mod:`evonas.train.fewshot`): the one-shot
    supernet, trained as :class:`OneShotEvaluator` trains it, is split on one gene into a
    sub-supernet per choice, each trained ``split_steps`` more steps from the one-shot weights on
    its choice's architectures; an architecture is scored by the sub-supernet of its choice.

    Args:
        split: the gene to split on, or ``"auto"``: the one whose choice moves the one-shot
            score most (:func:`~evonas.train.fewshot.gene_importance`).
        split_steps: steps of each sub-supernet.
        max_choices: ``auto`` only splits genes with at most this many choices.
        (the rest as :class:`OneShotEvaluator`)

    The split gene and each sub-supernet are kept in the store when trained, so a resumed run
    trains none again.
    """

    protocol = "few-shot (single-path sub-supernets, split on one gene)"
    estimate = "fewshot"

    def __init__(self, encoding: Any, dataset: Any, config: TrainConfig | None = None,
                 supernet_steps: int = 4000, key: jax.Array | None = None,
                 fitness: str = "val_acc", store: Any = None,
                 cache: ProgramCache | None = None, *, split: int | str = "auto",
                 split_steps: int = 1000, max_choices: int = 8):
        super().__init__(encoding, dataset, config, supernet_steps, key, fitness, store, cache)
        checks.positive_int("FewShotEvaluator.split_steps", split_steps)
        checks.integer("FewShotEvaluator.max_choices", max_choices, 2)
        cards = np.asarray(encoding.space.cardinalities)
        if split != "auto":
            checks.integer("FewShotEvaluator.split", split, 0, len(cards) - 1)
            if cards[int(split)] < 2:
                raise ValueError(f"FewShotEvaluator.split: gene {split} has one choice; split "
                                 f"on a gene with 2 or more, or use split: auto")
        elif not ((cards >= 2) & (cards <= max_choices)).any():
            raise ValueError(f"FewShotEvaluator: no gene has 2..{max_choices} choices to split "
                             f"on (cardinalities {cards.tolist()}); raise max_choices or use "
                             "the oneshot evaluator")
        self.split = split
        self.split_steps = int(split_steps)
        self.max_choices = int(max_choices)
        self.gene: int | None = None
        self.subs: list[Any] | None = None
        self.split_seconds = 0.0

    def _kept(self, name: str, like: Any) -> Any:
        return None if self.store is None else self.store.load(name, like)

    def _keep(self, name: str, tree: Any) -> None:
        if self.store is not None:
            self.store.save(name, tree)

    def sub_supernets(self) -> tuple[int, list[Any]]:
        """``(gene, sub-supernets' parameters)``: trains (or loads) them on first use."""
        if self.subs is None:
            import time

            from evonas.train.fewshot import gene_importance, split_gene, train_sub_supernets

            params = self.supernet()
            start = time.perf_counter()
            k_split, k_subs = jax.random.split(jax.random.fold_in(self.key, 1))
            kept = self._kept("fewshot_gene", {"gene": np.zeros((), np.int32)})
            if kept is not None:
                gene = int(kept["gene"])
            elif self.split != "auto":
                gene = int(self.split)
            else:
                gene = split_gene(gene_importance(
                    self.encoding, params, self.dataset, k_split,
                    eval_batch_size=self.config.eval_batch_size, max_choices=self.max_choices,
                    cache=self.cache))
            self._keep("fewshot_gene", {"gene": np.asarray(gene, np.int32)})
            self.subs = train_sub_supernets(
                k_subs, self.encoding, self.dataset, self.config, params, gene,
                self.split_steps, load=lambda k, like: self._kept(f"fewshot_{k}", like),
                save=lambda k, sub: self._keep(f"fewshot_{k}", sub))
            self.gene = gene
            self.split_seconds = time.perf_counter() - start
        return self.gene, self.subs

    def _score(self, genomes: np.ndarray, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Each genome's metrics with the sub-supernet of its choice of the split gene."""
        from evonas.train.fewshot import score_few_shot

        gene, subs = self.sub_supernets()
        return score_few_shot(self.encoding, subs, gene, genomes, self.dataset,
                              self.config.eval_batch_size, splits, cache=self.cache)

    def describe(self) -> dict[str, Any]:
        """What the supernets cost, and the gene split on."""
        return {**super().describe(), "split_gene": self.gene, "split_steps": self.split_steps,
                "split_seconds": self.split_seconds}
