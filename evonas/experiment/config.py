"""``ExperimentConfig``: a typed, YAML-loadable description of one search experiment.

The defaults describe the embedded default experiment: the ``conv`` encoding on MNIST-1D searched
by regularized evolution, sized to finish in about five minutes on a 2-core CPU. Every value is
checked when the config is built, so a typo fails at load time with the key, the bad value and
what is allowed, never an hour into a run.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import yaml

from evonas import checks
from evonas.data.batches import check_batch_budget
from evonas.experiment import legacy
from evonas.experiment.typed import check_fields, from_mapping, load_yaml
from evonas.fields import changes_numbers, setting
from evonas.objectives import metrics
from evonas.objectives.constraints import Constraint, parse_constraint
from evonas.store.atomic import read_small_text
from evonas.store.configfile import CONFIG_LIMIT
from evonas.train.config import TrainConfig

DIRECTIONS = ("max", "min")
# JAX keys are made from 32 bits of a seed (jax_enable_x64 off): a larger seed would silently
# repeat a smaller one's search.
MAX_SEED = 2**32 - 1
# the built-ins; plug-ins register more
EVALUATORS = ("training", "tabular", "oneshot", "few_shot")
PRUNE_MODES = ("structured", "unstructured")
# what ``final.finetune`` / ``evonas finetune`` trains; ``scratch`` is the baseline
FINETUNE_MODES = ("full", "last", "head", "probe", "scratch")
FINETUNE_SOURCES = ("best", "distilled", "pruned")
# Version 3: derived from the sections (fields that can change a number, values other than the
# default experiment's); versions 1 and 2 are the flat layout's (evonas.experiment.legacy).
FINGERPRINT_VERSION = 3


# -- sections --------------------------------------------------------------------------------


def check_positive(path: str, value: int | float | None, *, allow_zero: bool = False) -> None:
    """``value`` is None (no limit) or a finite number > 0 (``>= 0`` with ``allow_zero``)."""
    if value is not None:
        checks.positive(path, value, allow_zero=allow_zero)


# The default experiment's conv space: 4 layers of 3 widths and 5 ops. Smaller than the encoding's
# own default so that a generation of 16 compiles and trains in about 45 s on a 2-core CPU (few
# shapes, no 64-wide layers), yet 3-4 conv layers reach 96-98 % on MNIST-1D once retrained.
DEFAULT_CONV_OPTIONS: dict[str, Any] = {
    "max_layers": 4,
    "widths": [16, 32, 48],
    "ops": ["conv3", "conv5", "conv7", "maxpool3", "identity"],
}


# The default experiment's regularized evolution: a population of 16, tournaments of 4.
DEFAULT_STRATEGY_PARAMS: dict[str, Any] = {"population_size": 16, "sample_size": 4}

# section -> (its free-form field, the name whose defaults these are, the defaults): a section
# naming that name with the field empty gets them; another name never does.
_NAMED_DEFAULTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "strategy": ("params", "regularized_evolution", DEFAULT_STRATEGY_PARAMS),
    "encoding": ("options", "conv", DEFAULT_CONV_OPTIONS),
}


class _Named:
    """A section that names a registered thing (``SECTION``) and its free-form settings: checked
    on construction, and given the default experiment's settings when it names the default
    experiment's thing with none of its own (:data:`_NAMED_DEFAULTS`)."""

    SECTION: ClassVar[str]

    def __post_init__(self):
        check_fields(self, self.SECTION)
        field, owner, defaults = _NAMED_DEFAULTS[self.SECTION]
        if self.name == owner and not getattr(self, field):
            object.__setattr__(self, field, copy.deepcopy(defaults))


@dataclasses.dataclass(frozen=True)
class EncodingConfig(_Named):
    """Which genome encoding to search, and the options passed to its factory.

    ``conv`` with no options gets :data:`DEFAULT_CONV_OPTIONS` (the default experiment's space);
    other encodings with no options get their own defaults.
    """

    SECTION: ClassVar[str] = "encoding"
    name: str = "conv"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """The dataset and its validation split (see ``evonas.data.load_dataset``).

    Attributes:
        name: ``"mnist1d"``, ``"digits"``, ``"fashion_mnist"``, ``"tfds:<name>"``, a door to
            your files (``"npz"``, ``"csv"``, ``"folder"``, ``"idx"``, with ``path``), or
            ``"arrays"`` (data given in Python: ``Experiment(config, dataset=...)``).
        val_fraction: share of the train split held out for validation (fitness), in (0, 1).
        seed: seed of the validation split.
        limit: keep at most this many train examples; ``None`` keeps all.
        path: the file or folder a door reads.
        label: ``csv``: the label column.
        image_size: ``folder``: ``[height, width]`` every image is resized to.
        data_dir: where ``tfds:`` sets and ``fashion_mnist`` are (None: their defaults).
        download: ``tfds:`` sets: download and prepare the set if it is not there yet.
        digest: the content hash of the data the run started on (filled in by the run, part
            of its fingerprint: a resume on other data is refused); None: not checked.
    """

    name: str = "mnist1d"
    val_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None
    path: str | None = setting(None, numbers=False)  # where, not what: the digest says what
    label: str | None = None
    image_size: tuple[int, ...] | None = None
    data_dir: str | None = setting(None, numbers=False)
    download: bool = setting(False, numbers=False)
    digest: str | None = None

    def __post_init__(self):
        check_fields(self, "dataset")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"dataset.val_fraction must be in (0, 1); got {self.val_fraction!r}")
        checks.integer("dataset.seed", self.seed, 0, MAX_SEED)
        check_positive("dataset.limit", self.limit)
        if self.image_size is not None and (len(self.image_size) != 2 or min(
                self.image_size) < 1):
            raise ValueError(f"dataset.image_size must be [height, width] of positive sizes; "
                             f"got {list(self.image_size)}")
        door = self.name in ("npz", "csv", "folder", "idx")
        if door and self.path is None:
            raise ValueError(f"dataset.path is missing: dataset.name {self.name!r} reads a file "
                             "or folder (dataset: {name: " + self.name + ", path: ...})")
        if self.path is not None and not door:
            raise ValueError(f"dataset.path is set but dataset.name {self.name!r} reads no path; "
                             "use npz, csv, folder or idx (or --data PATH)")
        if self.label is not None and self.name != "csv":
            raise ValueError("dataset.label names the label column of a csv; dataset.name is "
                             f"{self.name!r}")
        if self.image_size is not None and self.name != "folder":
            raise ValueError("dataset.image_size resizes the images of a folder; dataset.name "
                             f"is {self.name!r}")


@dataclasses.dataclass(frozen=True)
class StrategyConfig(_Named):
    """The search strategy by registered name, and its hyper-parameters.

    ``regularized_evolution`` with no params gets :data:`DEFAULT_STRATEGY_PARAMS`; any other
    strategy with no params gets its own defaults (never another strategy's).
    """

    SECTION: ClassVar[str] = "strategy"
    name: str = "regularized_evolution"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """One objective: a metric of an evaluated architecture and whether to maximise it.

    ``direction`` defaults to the metric's own (:func:`evonas.objectives.direction`: ``max``
    for accuracies, ``min`` for losses and costs; ``max`` for a metric evonas does not know).
    """

    name: str = "val_acc"
    direction: str | None = None

    def __post_init__(self):
        check_fields(self, "search.objectives[]")
        if not re.fullmatch(r"[A-Za-z_]\w*", self.name):
            raise ValueError(
                f"search.objectives[].name must be a metric name such as 'val_acc'; "
                f"got {self.name!r}"
            )
        if self.direction is None:
            object.__setattr__(self, "direction", metrics.direction(self.name))
        checks.choice(f"search.objectives[{self.name}].direction", self.direction, DIRECTIONS)

    @property
    def maximize(self) -> bool:
        return self.direction == "max"


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """How the ``latency`` metric is measured (see ``evonas.evaluators.LatencyMeter``).

    Latency is measured only when an objective or a constraint names it: the exact-shape
    standalone model of each new architecture, jitted on the current device, the median of
    ``repeats`` inference calls on ``batch_size`` examples, in milliseconds.
    """

    batch_size: int = 1
    repeats: int = 30
    warmup: int = 3

    def __post_init__(self):
        check_fields(self, "evaluator.latency")
        check_positive("evaluator.latency.batch_size", self.batch_size)
        check_positive("evaluator.latency.repeats", self.repeats)
        check_positive("evaluator.latency.warmup", self.warmup)


@dataclasses.dataclass(frozen=True)
class PrefilterConfig:
    """Screening by a zero-cost proxy: each genome the strategy asks for competes with
    ``factor - 1`` single-gene mutants of itself, and only the best by ``proxy`` is evaluated
    (``evonas.strategies.Prefilter``, a strategy wrapper).

    Attributes:
        proxy: ``naswot``, ``synflow``, ``grad_norm`` or ``snip``.
        factor: candidates scored per genome evaluated (``>= 2``).
    """

    proxy: str = "naswot"
    factor: int = 4

    def __post_init__(self):
        check_fields(self, "evaluator.prefilter")
        from evonas.train.proxies import PROXIES

        checks.choice("evaluator.prefilter.proxy", self.proxy, PROXIES)
        checks.integer("evaluator.prefilter.factor", self.factor, low=2)


@dataclasses.dataclass(frozen=True)
class RepairConfig:
    """Asking only for feasible architectures: each genome the strategy asks for that breaks a
    ``search.constraints`` bound on an analytic cost (params, flops) is replaced by the first
    feasible of ``tries`` of its single-gene mutants, else of ``tries`` samples of the space,
    before anything is trained (``evonas.strategies.Feasible``, a strategy wrapper).

    Attributes:
        tries: mutants, then samples, tried per infeasible genome (``>= 1``).
    """

    tries: int = 16

    def __post_init__(self):
        check_fields(self, "search.repair")
        checks.integer("search.repair.tries", self.tries, low=1)


@dataclasses.dataclass(frozen=True)
class InheritConfig:
    """Weight inheritance (``evonas.evaluators.Inherit``): a child starts from its first
    parent's trained parameters and trains ``steps`` (default a quarter of ``train.steps``, a
    multiple of ``train.steps_per_call``)."""

    steps: int | None = None

    def __post_init__(self):
        check_fields(self, "evaluator.inherit")
        check_positive("evaluator.inherit.steps", self.steps)


@dataclasses.dataclass(frozen=True)
class HalvingConfig:
    """Successive halving inside each population's training
    (``evonas.evaluators.SuccessiveHalving``): at each of ``rungs`` (steps) the best ``1 /
    eta`` by validation accuracy go on, the others stop."""

    rungs: tuple[int, ...] = ()
    eta: int = 3

    def __post_init__(self):
        check_fields(self, "evaluator.halving")
        from evonas.train.halving import Halving

        try:
            Halving(self.rungs, self.eta)
        except ValueError as err:
            raise ValueError(str(err).replace("halving.", "evaluator.halving.")) from None


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """How an architecture's fitness is obtained: a base evaluator and what wraps it.

    Attributes:
        name: ``"training"`` (train every new architecture: the population trainer, with the
            ``train`` section), ``"tabular"`` (look it up in a benchmark table; no training,
            no dataset, and the final stage reads the table instead of retraining) or
            ``"oneshot"`` (weight sharing: one supernet trained by uniform single-path sampling
            with the ``train`` section's optimiser, batch size and steps per call; each
            architecture is scored with its weights, untrained; the final stage retrains from
            scratch as usual) or ``"few_shot"`` (the one-shot supernet split on one gene into a
            sub-supernet per choice, each trained on from the one-shot weights; ``options``:
            ``split`` (a gene, or ``auto``: the one that moves the one-shot score most),
            ``split_steps`` (1000), ``max_choices`` (8)).
        benchmark: ``tabular``: the registered benchmark (``evonas list``); default the
            encoding's name.
        options: ``tabular``: options of the benchmark's factory (``{dataset: cifar100}``); a
            registered plug-in evaluator: options of its factory.
        noise: ``tabular``: standard deviation of Gaussian noise on the fitness a strategy sees.
        supernet_steps: ``oneshot``, ``few_shot``: steps of supernet training (kept in the run
            directory, so a resumed run does not train it again).
        inherit: ``training``: weight inheritance (``{}`` for the defaults), or null.
        halving: ``training``: successive halving (``{rungs: [100, 200]}``), or null.
        proxies: zero-cost proxies (``naswot``, ``synflow``, ``grad_norm``, ``snip``) to
            compute for every new architecture before it is trained (recorded as metrics;
            usable as objectives and constraints). Training runs only.
        prefilter: screening of the asked genomes by a proxy before they are evaluated, or
            null. Training runs only.
        latency: how the ``latency`` metric is measured, when an objective or constraint
            names it.
    """

    name: str = "training"
    benchmark: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    noise: float = 0.0
    supernet_steps: int = 4000
    inherit: InheritConfig | None = None
    halving: HalvingConfig | None = None
    proxies: tuple[str, ...] = ()
    prefilter: PrefilterConfig | None = None
    latency: LatencyConfig = LatencyConfig()

    def __post_init__(self):
        check_fields(self, "evaluator")
        check_positive("evaluator.noise", self.noise, allow_zero=True)
        check_positive("evaluator.supernet_steps", self.supernet_steps)
        from evonas.train.proxies import check_proxies

        object.__setattr__(self, "proxies", check_proxies("evaluator.proxies", self.proxies))
        if self.name not in ("oneshot", "few_shot") and self.supernet_steps != 4000:
            raise ValueError("evaluator.supernet_steps applies to the oneshot and few_shot "
                             "evaluators only; remove it or set evaluator.name=oneshot")
        if self.name in ("training", "oneshot", "few_shot"):  # a plug-in's takes the options
            given = [f for f, default in (("benchmark", None), ("options", {}), ("noise", 0.0))
                     if getattr(self, f) != default and not (
                         f == "options" and self.name == "few_shot")]
            if given:
                raise ValueError(f"evaluator.{given[0]} applies to the tabular evaluator only; "
                                 f"remove it or set evaluator.name=tabular")
        trained = [f"evaluator.{f}" for f in ("inherit", "halving") if getattr(self, f)]
        if self.name in EVALUATORS and self.name != "training" and trained:
            raise ValueError(f"{trained[0]} changes how networks train; the {self.name} "
                             f"evaluator trains none: remove it")
        if self.inherit is not None and self.halving is not None:
            raise ValueError("evaluator.inherit can't be combined with evaluator.halving: use "
                             "one of them")
        if self.name == "tabular" and (self.proxies or self.prefilter):
            raise ValueError("evaluator.proxies and evaluator.prefilter score untrained "
                             "networks; a tabular evaluator trains none: remove them")

    @property
    def tabular(self) -> bool:
        return self.name == "tabular"


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The search budget, seed, objectives and constraints.

    The search stops after ``generations`` generations, ``evaluations`` evaluated
    architectures or ``time_budget`` seconds of generations, whichever comes first; at least one
    must be set.

    Attributes:
        population_size: architectures evaluated per generation (trained at once).
        generations: number of generations, or ``None`` for no limit.
        evaluations: number of evaluated architectures, or ``None`` for no limit.
        seed: seed of the whole search (strategy, initialisation, batches).
        objectives: the first is the fitness; more than one makes the search multi-objective
            (a strategy such as ``nsga2`` or ``weighted_sum`` then gets every objective).
        constraints: bounds such as ``"params <= 200000"`` or ``"latency <= 2"``; a violating
            architecture is infeasible: it fails, ranks below every feasible one and is never
            the best. Bounds on analytic costs, latency and proxies are checked before
            training.
        patience: stop early after this many generations without a better best fitness;
            ``None`` never stops early.
        time_budget: seconds the generations may take together (the final stage comes after).
            A generation starts only if, taking as long as the last one, it would end within
            the budget (the first always runs), so the search ends near its budget rather than
            a generation past it. A time budget makes the number of generations depend on the
            machine: the history records how many ran and how long each took, and a resume
            continues by the same rule on the recorded seconds.
        warm_start: the directory of an earlier run of the same search space (finished or
            not): the search starts from its best architectures, or from its distribution,
            each re-evaluated on this run's data (:mod:`evonas.experiment.warm_start`). What
            was taken is kept in the run directory (``warm_start.json``), so a resume does not
            read the earlier run again.
        repair: replace asked architectures that break a bound on an analytic cost with
            feasible ones before training (:class:`RepairConfig`), or None: they are refused
            untrained and count as evaluated (rank below every feasible one).
    """

    population_size: int = 16
    generations: int | None = 5
    evaluations: int | None = None
    seed: int = 0
    objectives: tuple[ObjectiveConfig, ...] = (ObjectiveConfig(),)
    constraints: tuple[str, ...] = ()
    patience: int | None = None
    time_budget: float | None = None
    warm_start: str | None = None
    repair: RepairConfig | None = None

    def __post_init__(self):
        check_fields(self, "search")
        if self.warm_start is not None and (not isinstance(self.warm_start, str)
                                            or not self.warm_start.strip()):
            raise ValueError(f"search.warm_start must be the directory of an earlier run; got "
                             f"{self.warm_start!r}")
        if self.time_budget is not None:
            checks.number("search.time_budget", self.time_budget, 0.0, open_low=True)
        check_positive("search.patience", self.patience)
        check_positive("search.population_size", self.population_size)
        check_positive("search.generations", self.generations)
        check_positive("search.evaluations", self.evaluations)
        checks.integer("search.seed", self.seed, 0, MAX_SEED)
        if self.generations is None and self.evaluations is None and self.time_budget is None:
            raise ValueError(
                "search needs a budget: set search.generations, search.evaluations or "
                "search.time_budget (all are null)"
            )
        if not self.objectives:
            raise ValueError("search.objectives must list at least one objective; got []")
        names = [o.name for o in self.objectives]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"search.objectives must name each metric once; repeated: {repeated}")
        for text in self.constraints:
            try:
                parse_constraint(text)
            except ValueError as err:
                raise ValueError(f"search.constraints: {err}") from None
        object.__setattr__(self, "constraints", tuple(c.strip() for c in self.constraints))

    def parsed_constraints(self) -> tuple[Constraint, ...]:
        """The constraints as :class:`Constraint` tuples."""
        return tuple(parse_constraint(c) for c in self.constraints)

    @property
    def objective_directions(self) -> tuple[tuple[str, bool], ...]:
        """``(name, maximize)`` of every objective, in order."""
        return tuple((o.name, o.maximize) for o in self.objectives)

    @property
    def multiobjective(self) -> bool:
        """Whether more than one objective is listed."""
        return len(self.objectives) > 1


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """The final retraining of the best architectures, on train + validation.

    Attributes:
        top_k: how many of the best to retrain and test; 0 skips the final stage.
        steps: optimiser steps of each retraining (with ``time_budget``, the most each).
        ensemble: also report the test score of the retrained models' averaged logits.
        time_budget: seconds of wall clock for the top k's retraining together, or None (a
            fixed ``steps`` each): each trains for an equal share of what is left by
            :func:`~evonas.train.train_for_seconds`, its learning-rate schedule stretched over
            the steps that fit; ``best/final.json`` records each model's steps. Their count
            depends on the machine's speed; distillation and pruning then default to the best's
            steps; the front's members train ``steps``.
    """

    top_k: int = 3
    steps: int = 2000
    ensemble: bool = True
    time_budget: float | None = None

    def __post_init__(self):
        check_fields(self, "final.retrain")
        check_positive("final.retrain.top_k", self.top_k, allow_zero=True)
        check_positive("final.retrain.steps", self.steps)
        check_positive("final.retrain.time_budget", self.time_budget)


@dataclasses.dataclass(frozen=True)
class FrontConfig:
    """A multi-objective run's front: ``size`` members (spread evenly along the front when it
    has more) retrained, tested and exported to ``front/``; 0 skips it."""

    size: int = 8

    def __post_init__(self):
        check_fields(self, "final.front")
        check_positive("final.front.size", self.size, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class DistilConfig:
    """Distillation of the final ensemble into the best architecture (Hinton et al. 2015),
    tested and exported to ``distilled/``; ``evonas distil DIR`` does it later.

    Attributes:
        temperature: the softmax temperature of teacher and student (> 0).
        alpha: the weight of the teacher's soft targets, in [0, 1].
        steps: the student's optimiser steps (None: the best's retraining steps).
    """

    temperature: float = 4.0
    alpha: float = 0.9
    steps: int | None = None

    def __post_init__(self):
        check_fields(self, "final.distil")
        checks.positive("final.distil.temperature", self.temperature)
        checks.number("final.distil.alpha", self.alpha, 0.0, 1.0)
        check_positive("final.distil.steps", self.steps)


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """Pruning of the deployed network (the distilled one with ``final.distil``, else the
    best), fine-tuned and exported to ``pruned/``; ``evonas prune DIR`` does it later.

    Attributes:
        mode: ``"structured"`` (units / channels removed, a smaller genome of the space) or
            ``"unstructured"`` (magnitude masks).
        sparsity: the share of parameters to remove, in (0, 1).
        steps: fine-tuning steps (None: a quarter of the best's retraining steps).
    """

    mode: str = "structured"
    sparsity: float = 0.5
    steps: int | None = None

    def __post_init__(self):
        check_fields(self, "final.prune")
        checks.choice("final.prune.mode", self.mode, PRUNE_MODES)
        checks.number("final.prune.sparsity", self.sparsity, 0.0, 1.0, open_low=True,
                      open_high=True)
        check_positive("final.prune.steps", self.steps)


FINETUNE_HEAD_INITS = ("auto", "probe", "fresh")


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """How a found network is fine-tuned (``evonas finetune``; :mod:`evonas.experiment.finish.
    finetune`).

    Attributes:
        mode: ``full``, ``last`` (the last ``blocks`` blocks and the head), ``head``,
            ``probe`` (a linear probe on frozen features) or ``scratch`` (the baseline).
        blocks: ``last``: how many of the last blocks with parameters train (>= 1).
        steps: optimiser steps (None: a quarter of the best's retraining steps).
        learning_rate: the head's (None: the run's ``train.learning_rate``).
        body_lr_scale: the pretrained parameters' learning rate over the head's, in (0, 1].
        head_init: how a new head (the data has other classes) starts in ``full``, ``last``
            and ``head``: ``probe``, a linear probe fitted on the frozen network's features
            first (LP-FT, Kumar et al. 2022), for a linear head; ``fresh``, a random
            initialisation; ``auto`` (default), ``probe`` where the head is linear.
        seed: the fine-tuning's seed (None: the run's ``search.seed``).
    """

    WHERE: ClassVar[str] = "finetune "  # how error messages name a field

    mode: str = "full"
    blocks: int = 1
    steps: int | None = None
    learning_rate: float | None = None
    body_lr_scale: float = 0.1
    head_init: str = "auto"
    seed: int | None = None

    def __post_init__(self):
        where = self.WHERE
        checks.choice(f"{where}mode", self.mode, FINETUNE_MODES)
        checks.positive_int(f"{where}blocks", self.blocks)
        if self.steps is not None:
            checks.positive_int(f"{where}steps", self.steps)
        if self.learning_rate is not None:
            checks.positive(f"{where}learning_rate", self.learning_rate)
        if not 0.0 < float(self.body_lr_scale) <= 1.0:
            raise ValueError(f"{where}body_lr_scale must be in (0, 1]; got "
                             f"{self.body_lr_scale!r}")
        checks.choice(f"{where}head_init", self.head_init, FINETUNE_HEAD_INITS)
        if self.seed is not None:
            checks.integer(f"{where}seed", self.seed, low=0)

    @property
    def label(self) -> str:
        """The output directory's name: the mode (``last2`` for the last 2 blocks)."""
        return f"last{self.blocks}" if self.mode == "last" else self.mode


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(FinetuneSettings):
    """``final.finetune``: the deployed network fine-tuned on other data after the search,
    tested on that data's test split and exported to ``finetuned/<mode>/`` (``finetune.json``
    last); ``evonas finetune DIR --data ...`` does the same on a finished run (and another mode).

    Attributes:
        data: the new data: a path (an ``.npz``, a ``.csv``, a folder of class folders, a
            folder of IDX files) or a dataset name (``fashion_mnist``, ``tfds:...``).
        source: the network fine-tuned: ``best``, ``distilled`` (with ``final.distil``) or
            ``pruned`` (with ``final.prune``).
        (the others): :class:`FinetuneSettings`.
    """

    WHERE: ClassVar[str] = "final.finetune."

    data: str = ""
    source: str = "best"

    def __post_init__(self):
        check_fields(self, "final.finetune")
        if not self.data.strip():
            raise ValueError("final.finetune.data must name the new data: a path (an .npz, a "
                             ".csv, a folder of class folders or of IDX files) or a dataset "
                             "name (fashion_mnist, tfds:NAME); got ''")
        super().__post_init__()
        checks.choice("final.finetune.source", self.source, FINETUNE_SOURCES)


@dataclasses.dataclass(frozen=True)
class FinalConfig:
    """What happens after the search, step by step (``evonas.experiment.finish``): retraining
    of the best and their ensemble, distillation, pruning, the front of a multi-objective run.
    A step set to null is skipped."""

    retrain: RetrainConfig = RetrainConfig()
    front: FrontConfig = FrontConfig()
    distil: DistilConfig | None = None
    prune: PruneConfig | None = None
    finetune: FinetuneConfig | None = None

    def __post_init__(self):
        check_fields(self, "final")
        needs = {"distilled": ("final.distil", self.distil),
                 "pruned": ("final.prune", self.prune)}
        if self.finetune is not None and self.finetune.source in needs:
            step, section = needs[self.finetune.source]
            if section is None:
                raise ValueError(f"final.finetune.source={self.finetune.source} needs {step}, "
                                 f"which is null; set {step}, or final.finetune.source to best")
        if self.distil is not None and (self.retrain.top_k < 2 or not self.retrain.ensemble):
            raise ValueError(
                f"final.distil has no ensemble to distil from (final.retrain.top_k="
                f"{self.retrain.top_k}, final.retrain.ensemble="
                f"{str(self.retrain.ensemble).lower()}); set top_k to 2 or more and ensemble "
                "to true, or final.distil to null")


@dataclasses.dataclass(frozen=True)
class DisplayConfig:
    """How a run shows its progress; never changes results (not part of the fingerprint).

    Attributes:
        progress: print a progress line per generation.
        report: write the HTML report (``run_dir/report/``) when the run ends.
        tensorboard: also write TensorBoard scalars to ``run_dir/tensorboard`` (needs the
            ``tensorboardX`` package).
    """

    progress: bool = True
    report: bool = True
    tensorboard: bool = False

    def __post_init__(self):
        check_fields(self, "display")


# -- the experiment --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one search experiment, section by section.

    Build it with :meth:`from_yaml`, :meth:`from_dict` (which also check the encoding, strategy
    and dataset names against the registries) or directly; change it with
    :meth:`with_overrides`. ``run_dir=None`` lets the runner choose a directory.
    """

    encoding: EncodingConfig = EncodingConfig()
    dataset: DatasetConfig = DatasetConfig()
    strategy: StrategyConfig = StrategyConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()
    # 200 steps rank architectures well enough; the final retraining gives the accuracy.
    train: TrainConfig = TrainConfig(steps=200)
    search: SearchConfig = SearchConfig()
    final: FinalConfig = FinalConfig()
    display: DisplayConfig = setting(DisplayConfig(), numbers=False)
    run_dir: str | None = setting(None, numbers=False)
    # Plug-in files (relative to the YAML file) or modules to import before the names are
    # checked; loaded by from_yaml only, never from a run directory (see evonas.experiment.plugins).
    plugins: tuple[str, ...] = setting((), numbers=False)

    SECTIONS: ClassVar[tuple[str, ...]] = (
        "encoding", "dataset", "strategy", "evaluator", "train", "search", "final", "display"
    )

    def __post_init__(self):
        check_fields(self, "")
        # The trainers draw every step's batch indices at once; bound them before anything runs.
        final = self.final
        for where, steps in (("train.steps", self.train.steps),
                             # a timed retraining draws its batches a chunk at a time
                             ("final.retrain.steps", final.retrain.time_budget is None
                              and final.retrain.steps),
                             ("final.distil.steps", final.distil and final.distil.steps),
                             ("final.prune.steps", final.prune and final.prune.steps),
                             ("final.finetune.steps", final.finetune and final.finetune.steps)):
            if steps:
                check_batch_budget(where, steps, self.train.batch_size)
        if self.evaluator.tabular and (final.distil or final.prune or final.finetune):
            which = ("final.distil" if final.distil else "final.prune" if final.prune else
                     "final.finetune")
            raise ValueError(f"{which} needs trained networks; a tabular run (evaluator.name="
                             f"{self.evaluator.name}) trains none: set {which} to null")
        halving = self.evaluator.halving
        if halving is not None:
            from evonas.train.halving import Halving

            try:
                Halving(halving.rungs, halving.eta).check(self.train.steps,
                                                          self.train.steps_per_call)
            except ValueError as err:
                raise ValueError(str(err).replace("halving.", "evaluator.halving.")) from None
        inherit = self.evaluator.inherit
        if inherit is not None and inherit.steps is not None:
            checks.integer("evaluator.inherit.steps", inherit.steps, 1, self.train.steps)
            if inherit.steps % self.train.steps_per_call:
                raise ValueError(f"evaluator.inherit.steps={inherit.steps} must be a multiple "
                                 f"of train.steps_per_call={self.train.steps_per_call}")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ExperimentConfig:
        """Builds a config from nested mappings; missing keys take their defaults.

        Raises:
            ValueError: an unknown key (with the nearest valid one), a value of the wrong type,
                a value out of range, or an encoding / strategy / dataset name that is not
                registered.
        """
        data, renamed = legacy.upgrade({} if data is None else _mapping(data))
        if renamed:
            warnings.warn(legacy.renamed_note(renamed), FutureWarning, stacklevel=2)
        config = from_mapping(cls, data, "")
        config.check_names()
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, *, plugins: bool = True) -> ExperimentConfig:
        """Reads a YAML file (an empty file is the default experiment); see :meth:`from_dict`.

        Args:
            path: the file.
            plugins: import the files or modules its ``plugins`` key lists (relative to the
                file's directory) before the names are checked. Pass False for a file you did
                not write (a run directory's ``config.yaml``).
        """
        try:
            text = read_small_text(path, CONFIG_LIMIT)
        except ValueError as err:  # a FIFO, a device, a huge file: never read
            raise ValueError(f"{err}") from None
        data = load_yaml(text, os.fspath(path))
        if plugins and isinstance(data, Mapping) and data.get("plugins"):
            from evonas.experiment.plugins import load_plugins

            listed = data["plugins"]
            if isinstance(listed, str) or not isinstance(listed, Sequence):
                raise ValueError(f"plugins must be a list of .py files or module names; got "
                                 f"{listed!r}")
            load_plugins(listed, os.path.dirname(os.path.abspath(path)))
        return cls.from_dict(data)

    def check_names(self) -> None:
        """Checks the encoding, strategy and dataset names against what is registered.

        Raises:
            ValueError: naming the field, the unknown name, the nearest known one and the list.
        """
        # Imported here: the registries pull in the encodings and strategies, which a config
        # that is only being written or compared does not need.
        from evonas.benchmarks import list_benchmarks
        from evonas.data import DATASETS, DOORS
        from evonas.evaluators import list_evaluators
        from evonas.genomes import list_encodings
        from evonas.strategies import list_strategies

        checks.name("encoding.name", self.encoding.name, list_encodings())
        checks.name("evaluator.name", self.evaluator.name, list_evaluators())
        strategies = list_strategies()
        if not self.strategy.name.startswith("evosax_"):
            checks.name("strategy.name", self.strategy.name,
                        [s for s in strategies if not s.startswith("evosax_")],
                        ", or 'evosax_<algorithm>'")
        else:
            checks.name("strategy.name", self.strategy.name, strategies)
        if self.evaluator.tabular:
            benchmark = self.evaluator.benchmark or self.encoding.name
            where = "evaluator.benchmark" if self.evaluator.benchmark else (
                "evaluator.benchmark (default: encoding.name)")
            checks.name(where, benchmark, list_benchmarks())
        elif not self.dataset.name.startswith("tfds:"):
            checks.name("dataset.name", self.dataset.name, (*DATASETS, *DOORS, "arrays"),
                        ", or 'tfds:<name>'")

    # -- writing -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as plain nested dicts and lists (every default written)."""
        return _plain(self)

    def to_yaml(self) -> str:
        """The fully resolved config as YAML text, sections in a fixed order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def fingerprint(self, version: int = FINGERPRINT_VERSION) -> str:
        """A stable hash (16 hex digits) of every setting that can change the search's numbers.

        Derived from the sections: a field whose metadata says it changes no number (where the
        run lives, how it is shown, the plug-ins imported, the compilation cache) is left out,
        and so is every value equal to the default experiment's, so a field added later at a
        default that keeps the old numbers leaves old fingerprints alone. ``version`` 1 or 2:
        the hash of the flat layout that run directories of that time recorded
        (:func:`evonas.experiment.legacy.fingerprint`).
        """
        if version in (1, 2):
            return legacy.fingerprint(legacy.flatten(self.to_dict()), version)
        if version != FINGERPRINT_VERSION:
            raise ValueError(f"fingerprint version must be 1, 2 or {FINGERPRINT_VERSION}; got "
                             f"{version!r}")
        data = _numbers(self, type(self)())
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    # -- changing ----------------------------------------------------------------------------

    def with_overrides(self, overrides: Sequence[str]) -> ExperimentConfig:
        """A copy with ``"section.key=value"`` overrides applied (the CLI's ``--set``).

        Values are parsed as YAML (``3``, ``1e-3``, ``true``, ``null``, ``[16, 32]``); a path
        may reach into free-form mappings (``encoding.options.max_layers=6``).

        Raises:
            ValueError: a malformed override, or a result that :meth:`from_dict` rejects.
        """
        data = self.to_dict()
        keys, renamed = [], []
        for text in overrides:
            key, sep, raw = text.partition("=")
            if not sep or not all(key.strip().split(".")):
                raise ValueError(
                    f"an override must look like section.key=value (e.g. train.steps=500); "
                    f"got {text!r}"
                )
            value = (load_yaml(raw, f"the value of override {text[:80]!r}") if raw.strip()
                     else None)
            for path, new in legacy.rename(key.strip(), value):
                if path != key.strip():
                    renamed.append(key.strip())
                _set(data, path, new, key.strip())
                keys.append(path)
        if renamed:
            warnings.warn(legacy.renamed_note(renamed), FutureWarning, stacklevel=2)
        _drop_stale_defaults(data, keys)
        return type(self).from_dict(data)


def _set(data: dict[str, Any], path: str, value: Any, given: str) -> None:
    """Sets ``path`` (``section.key``) in ``data``; a section that is null (a final step or an
    evaluator wrapper that is off) becomes a mapping, so setting one of its keys turns it on."""
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ValueError(f"cannot set {given!r}: {where!r} is a value ({child!r}), not a "
                             f"section; set {where}=VALUE instead")
        node = child
    node[parts[-1]] = value


def _numbers(value: Any, default: Any) -> Any:
    """``value`` (a config dataclass) as plain data, without the fields that change no number
    and without the values equal to ``default``'s (every value when ``default`` is None: a
    section that is off by default)."""
    if not dataclasses.is_dataclass(value) or (default is not None
                                                and type(value) is not type(default)):
        return _plain(value)
    out = {}
    for f in dataclasses.fields(value):
        if not changes_numbers(f):
            continue
        mine = getattr(value, f.name)
        theirs = getattr(default, f.name) if default is not None else dataclasses.MISSING
        if mine == theirs:
            continue
        if dataclasses.is_dataclass(mine) and dataclasses.is_dataclass(theirs):
            nested = _numbers(mine, theirs)
            if nested != {}:  # differs only where no number changes
                out[f.name] = nested
        elif dataclasses.is_dataclass(mine):  # a section that is off by default, now on
            out[f.name] = _numbers(mine, None)
        else:
            out[f.name] = _plain(mine)
    return out


def _mapping(data: Any) -> Any:
    """``data`` as given (from_mapping names what is wrong with a non-mapping)."""
    return dict(data) if isinstance(data, Mapping) else data


def _drop_stale_defaults(data: dict[str, Any], keys: Sequence[str]) -> None:
    """After ``--set strategy.name=nsga2``, the default experiment's regularized-evolution
    params (or conv options after ``encoding.name=mlp``) no longer apply: drop each one still at
    its default value that no override set."""
    for section, (field, owner, defaults) in _NAMED_DEFAULTS.items():
        node = data.get(section)
        if f"{section}.name" not in keys or not isinstance(node, dict) or node.get(
                "name") == owner or f"{section}.{field}" in keys:
            continue
        values = node.get(field)
        if isinstance(values, dict):
            for key, default in defaults.items():
                if values.get(key) == default and f"{section}.{field}.{key}" not in keys:
                    del values[key]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
