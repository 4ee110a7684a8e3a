"""``Experiment``: the host loop of a search: ask, de-duplicate, evaluate, tell, record, checkpoint.

Determinism and resume: every random number comes from ``search.seed`` by explicit key folding,
``fold_in(search_key, generation)`` for generation ``g``, so generation ``g``'s keys are the same
whether or not the process restarted in between. Each generation is committed to the history and
then checkpointed (the strategy state); a resumed run restores the newest valid checkpoint,
drops history rows it does not cover and continues, writing exactly the rows an uninterrupted run
writes. After the search the top k are retrained and the best exported (``evonas.experiment.
final``), then the report is written.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.evaluators import TrainingEvaluator
from evonas.evaluators.oneshot import OneShotEvaluator
from evonas.experiment.callbacks import (
    Callback,
    EarlyStopping,
    GenerationInfo,
    JsonLines,
    Progress,
    TensorBoard,
)
from evonas.experiment.components import Components, build_components, runner_plan
from evonas.experiment.config import FINGERPRINT_VERSION, ExperimentConfig
from evonas.experiment.final import final_key, finisher_for, read_final, run_final
from evonas.experiment.front import read_front, run_front
from evonas.experiment.generation import GenerationEvaluator
from evonas.objectives import row_value
from evonas.operators import mutate_one
from evonas.report import write_report
from evonas.store import NoCheckpointError, ParamStore, RunDir, RunDirError
from evonas.store.run_dir import RunLock
from evonas.strategies import beliefs, num_objectives
from evonas.train import distributed, train_population
from evonas.train.proxies import zero_cost_scores

# Streams folded into the seed's key: one per use, so adding a use never shifts another's.
_STRATEGY_INIT, _SEARCH, _FRONT = 0, 1, 3  # 2: the final stage's (final.FINAL_KEY)
_PREFILTER = 7  # folded into a generation's key
_SUPERNET = 4  # the one-shot supernet


def prefilter(key: jax.Array, genomes: jax.Array, parts: Components,
              config: ExperimentConfig) -> jax.Array:
    """Screening by a zero-cost proxy: each asked genome competes with ``factor - 1`` of its
    single-gene mutants; the best by the proxy takes its place (and is what the strategy is
    told about). Strategies that learn from their own samples rather than the told genomes
    (the evosax ones) see the fitness of the replacement.
    """
    proxy, factor = config.search.prefilter.proxy, config.search.prefilter.factor
    genomes = jnp.asarray(genomes, jnp.int32)
    k_mutate, k_score = jax.random.split(key)
    space = parts.encoding.space
    candidates = jnp.concatenate(
        [genomes] + [mutate_one(jax.random.fold_in(k_mutate, j), genomes, space)
                     for j in range(factor - 1)])
    scores = zero_cost_scores(k_score, parts.encoding, np.asarray(candidates), parts.dataset,
                              (proxy,))[proxy]
    scores = np.where(np.isfinite(scores), scores, -np.inf).reshape(factor, -1)
    pick = np.argmax(scores, axis=0)  # ties: the asked genome (candidate 0) first
    return jnp.asarray(np.asarray(candidates).reshape(factor, *genomes.shape)[
        pick, np.arange(genomes.shape[0])])


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    """What a finished run produced.

    Attributes:
        run_dir: the run directory.
        generations: generations in the history.
        evaluations: rows in the history.
        best: the history row of the best architecture found (None if every one failed).
        final: ``best/final.json`` (retrained top-k and ensemble test accuracy), or None.
        report: the report's ``index.html``, or None when ``display.report`` is off.
        front: ``front/front.json`` of a multi-objective run (the retrained Pareto front), or
            None.
        models_wanted: how many models the final stage was asked for (final.retrain_top_k).
    """

    run_dir: Path
    generations: int
    evaluations: int
    best: dict[str, Any] | None
    final: dict[str, Any] | None
    report: Path | None
    front: dict[str, Any] | None = None
    models_wanted: int = 0


def default_run_dir(config: ExperimentConfig) -> Path:
    """``runs/<encoding>-<dataset>-<time>``: a new directory per run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = config.dataset.name.replace(":", "-")
    return Path("runs") / f"{config.encoding.name}-{dataset}-{stamp}"


def _parents(state: Any, batch: int) -> np.ndarray:
    """Parent ids of the last asked batch from the strategy state (-1 where unknown)."""
    parents = getattr(state, "parents", None)
    if parents is None:
        return np.full((batch, 1), -1, np.int32)
    return np.asarray(parents, np.int32).reshape(batch, -1)


def _summary(fitness: np.ndarray, maximize: bool, seconds: float) -> dict[str, Any]:
    ok = sorted(float(f) for f in fitness if np.isfinite(f))
    if not ok:
        return {"best": None, "median": None, "worst": None, "wall_seconds": seconds}
    best, worst = (ok[-1], ok[0]) if maximize else (ok[0], ok[-1])
    return {"best": best, "median": statistics.median(ok), "worst": worst,
            "wall_seconds": seconds}


class InfeasibleError(ValueError):
    """No architecture of the first generation met the search's constraints."""


class AllFailedError(ValueError):
    """Every architecture evaluated so far failed: the search has nothing to select from."""


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); ``run_dir`` keeps ``generations`` finished ones
    (``None``: the directory was removed, nothing had finished)."""

    def __init__(self, run_dir: Path, generations: int | None):
        super().__init__(f"interrupted: {run_dir}")
        self.run_dir = run_dir
        self.generations = generations


def failure_hint(config: ExperimentConfig, reasons: Sequence[str]) -> str:
    """What to change when evaluations fail for ``reasons``."""
    text = " ".join(reasons)
    if "nan" in text or "inf" in text or "non-finite" in text:
        return (f"the loss diverged: lower train.learning_rate (now "
                f"{config.train.learning_rate:g}) or check the data")
    if "constraint" in text:
        return "loosen search.constraints"
    return "check the encoding and the evaluator"


def _check_not_all_failed(rows: Sequence[dict[str, Any]], generation: int, succeeded: bool,
                          config: ExperimentConfig, run_dir: Path) -> None:
    """Stops a search in which every architecture evaluated so far failed.

    Raises:
        AllFailedError: naming the most common reasons and what to change; the generation is
            already in the history.
    """
    if succeeded or any(not r["failed"] for r in rows):
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["reason"])] = counts.get(str(r["reason"]), 0) + 1
    common = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; ".join(f"{why} ({n} of {len(rows)})" for why, n in common)
    raise AllFailedError(
        f"every architecture evaluated so far failed (generation {generation}: {reasons}): "
        f"{failure_hint(config, [why for why, _ in common])}. The search stops with nothing "
        f"to select; its rows are kept in {run_dir}; start a new run with the change"
    )


def _check_feasible(rows: Sequence[dict[str, Any]], config: ExperimentConfig,
                    run_dir: Path) -> None:
    """Stops a search whose first generation has no feasible architecture.

    Infeasible architectures all rank last, so with none feasible a strategy has nothing to
    select from and would search blindly to the end of the budget. The generation is already in
    the history (nothing is lost); the message names the constraints and the closest values.

    Raises:
        InfeasibleError: when every row of the generation failed a constraint.
    """
    if any(not r["failed"] or not str(r["reason"] or "").startswith("constraint")
           for r in rows):
        return
    parts = []
    for c in config.search.parsed_constraints():
        values = [row_value(r, c.metric) for r in rows]
        values = [v for v in values if np.isfinite(v)]
        if values:
            closest = min(values) if c.operator in ("<=", "<") else max(values)
            parts.append(f"{c.metric} {c.operator} {c.bound:g} (closest: {closest:g})")
        else:
            parts.append(f"{c.metric} {c.operator} {c.bound:g}")
    reasons = sorted({str(r["reason"]) for r in rows if r["reason"]})[:3]
    raise InfeasibleError(
        f"no architecture of the first generation ({len(rows)} evaluated) meets the "
        f"constraints: {'; '.join(parts)}. The search stops: with every architecture "
        f"infeasible a strategy has nothing to select. Reasons: {reasons}. The generation is "
        f"kept in {run_dir}; loosen search.constraints and start a new run"
    )


def _reasons(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The distinct failure reasons of a generation, most common first (at most 3)."""
    counts: dict[str, int] = {}
    for r in rows:
        if r["failed"] and r["reason"]:
            counts[str(r["reason"])] = counts.get(str(r["reason"]), 0) + 1
    return tuple(why for why, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def _better(a: float | None, b: float | None, maximize: bool) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b) if maximize else min(a, b)


def run_config(run: RunDir) -> ExperimentConfig:
    """The experiment of a run directory, from its ``config.yaml``.

    The plug-ins it lists are not loaded (the directory may come from someone else); a name
    they would have registered fails with a hint to pass ``--plugin``.

    Raises:
        ValueError: the config does not load.
    """
    data = run.config
    try:
        return ExperimentConfig.from_dict(data)
    except ValueError as err:
        plugins = data.get("plugins") if isinstance(data, dict) else None
        if plugins and "unknown name" in str(err):
            raise ValueError(f"{str(err).splitlines()[0]}. This run used the plug-ins "
                             f"{list(plugins)}, which are never loaded from a run directory: "
                             "pass them again with --plugin") from None
        raise


class Experiment:
    """One search experiment: ``Experiment(config).run()``, or ``Experiment.resume(dir).run()``.

    Args:
        config: the experiment.
        callbacks: extra callbacks (progress, JSON lines, TensorBoard and early stopping come
            from the config).
        run_dir: the run directory; default ``config.run_dir``, else ``runs/<...>-<time>``. An
            existing run of the same experiment is continued.
    """

    def __init__(self, config: ExperimentConfig, *, callbacks: Sequence[Callback] = (),
                 run_dir: str | os.PathLike | None = None):
        self.config = config
        chosen = run_dir if run_dir is not None else config.run_dir
        self.run_dir = Path(chosen) if chosen is not None else default_run_dir(config)
        self.extra_callbacks = list(callbacks)

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, *, callbacks: Sequence[Callback] = (),
               compile_cache_dir: str | None = None) -> Experiment:
        """The experiment of an existing run directory, to continue from its last checkpoint.

        The directory's ``config.yaml`` may come from someone else, so what it names that would
        load code is not taken from it: ``train.compile_cache_dir`` (JAX loads compiled native
        code from there) is the caller's ``compile_cache_dir``, and plug-ins are never loaded.

        Args:
            run_dir: the run directory.
            callbacks: extra callbacks.
            compile_cache_dir: JAX's persistent compilation cache for this process (None: none).

        Raises:
            RunDirError: not a run directory, or its config no longer matches its fingerprint.
            NoCheckpointError: no checkpoint yet (start it again with ``evonas run``).
        """
        run = RunDir(run_dir, readonly=True)
        RunLock.check_free(run.path)
        config = run_config(run)
        if config.fingerprint(run.fingerprint_version) != run.fingerprint:
            raise RunDirError(
                f"{run.config_path} no longer matches the run (fingerprint {run.fingerprint}); "
                "it was edited: restore it or start a new run"
            )
        stored = config.train.compile_cache_dir
        if stored is not None and stored != compile_cache_dir:
            warnings.warn(f"{run.config_path} sets train.compile_cache_dir={stored!r}; a resumed "
                          "run does not take it from the run directory (JAX would load compiled "
                          "code from it): pass --compile-cache-dir to use a cache", stacklevel=2)
        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, compile_cache_dir=compile_cache_dir))
        steps = [p for p in run.checkpoints_dir.iterdir() if p.name.isdigit()] \
            if run.checkpoints_dir.is_dir() else []
        started = run.paths.history.is_file() and run.history.count() > 0
        run.close()
        if not steps and not started:
            raise NoCheckpointError(
                f"no checkpoint in {run.checkpoints_dir}: nothing to resume; start it again with "
                f"`evonas run {run.config_path} --run-dir {run.path}`"
            )
        return cls(config, callbacks=callbacks, run_dir=run_dir)

    # -- the loop --------------------------------------------------------------------------------

    def _callbacks(self) -> list[Callback]:
        display, search = self.config.display, self.config.search
        callbacks: list[Callback] = [JsonLines()]
        if display.progress:
            callbacks.append(Progress())
        if display.tensorboard:
            callbacks.append(TensorBoard())
        if search.patience is not None:
            callbacks.append(EarlyStopping(search.patience, search.objectives[0].maximize))
        return callbacks + self.extra_callbacks

    def _budget_left(self, generation: int, evaluations: int) -> bool:
        search = self.config.search
        if search.generations is not None and generation >= search.generations:
            return False
        return search.evaluations is None or evaluations < search.evaluations

    def run(self) -> ExperimentResult | None:
        """Runs (or continues) the search, the final retraining and the report.

        In a multi-process run (:mod:`evonas.train.distributed`) this is the call of every
        process: process 0 runs the experiment and owns the run directory; on the others it
        trains the populations process 0 publishes (taking the experiment from process 0, not
        from ``config``) and returns None once the search ends.

        A run directory this call created is removed again if the run fails (or is
        interrupted) before its first generation is committed, so a corrected command can use
        it; committed generations are never removed.

        Raises:
            ValueError: the config can't be built; RunDirError: the run directory holds another
                experiment, can't be written or is in use. Both are raised before anything is
                written. AllFailedError / InfeasibleError: nothing could be selected.
            Interrupted: Ctrl-C; says what the directory keeps.
        """
        session = distributed.current()
        if session is not None and not session.leader:
            follow_leader(session)
            return None
        try:
            return self._lead(session)
        finally:
            if session is not None:  # an error before the search: the followers stop too
                session.close("process 0 stopped before its search ended")

    def _lead(self, session: distributed.Session | None) -> ExperimentResult:
        config = self.config
        parts = build_components(config)
        callbacks = self._callbacks()
        # The plan as the runner resolves it (auto: by platform) is what the directory records
        # and fingerprints: a resume elsewhere runs the same plan, hence the same numbers.
        train = dataclasses.replace(config.train, plan=runner_plan(config.train.plan))
        resolved = dataclasses.replace(config, run_dir=os.fspath(self.run_dir), train=train)
        run = RunDir.create(self.run_dir, resolved.to_dict(), resolved.fingerprint(),
                            fingerprint_version=FINGERPRINT_VERSION,
                            legacy={1: config.fingerprint(1)})
        if session is not None:
            self._share(session, resolved, parts, run.path)
        try:
            return self._run(run, parts, callbacks)
        except KeyboardInterrupt:
            raise Interrupted(run.path, self._discard_if_empty(run)) from None
        except BaseException:
            self._discard_if_empty(run)
            raise

    def _share(self, session: distributed.Session, resolved: ExperimentConfig,
               parts: Components, path: Path) -> None:
        """Hands the experiment to the other processes, or lets them go when its evaluator
        does not train populations (a table, one-shot scoring: process 0 alone computes)."""
        session.context = (f"; committed generations are kept in {path}: run `evonas resume "
                           f"{path}` with the same distributed options on every process")
        if type(parts.evaluator) is not TrainingEvaluator:
            warnings.warn(f"the {type(parts.evaluator).__name__} trains no populations to "
                          "share: process 0 runs this experiment alone and the other processes "
                          "stop", stacklevel=3)
            session.close("done")
            return
        note = distributed.population_note(parts.strategy.batch_size, len(session.devices))
        if note is not None:
            warnings.warn(note, stacklevel=3)
        session.send_experiment(resolved.to_dict())

    def _discard_if_empty(self, run: RunDir) -> int | None:
        """Removes what :meth:`RunDir.create` made when no generation was committed; returns
        the number of committed generations (None when the directory was removed)."""
        run.close()
        done = len(RunDir(run.path, readonly=True).history.generations()) if (
            run.paths.history.is_file()) else 0
        if done or not run.created:
            return done
        run.discard()
        return None

    def _run(self, run: RunDir, parts: Components, callbacks: list[Callback]
             ) -> ExperimentResult:
        config = self.config
        with run:
            session = distributed.current()
            try:
                self._search(run, parts, callbacks)
            except BaseException as err:
                if session is not None:
                    why = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    session.close(f"{type(err).__name__}: {why}" if why else type(err).__name__)
                raise
            if session is not None:  # the rest is process 0's alone, on its own devices
                session.close("done")
            best_rows = run.history.rows()
            seed_key = jax.random.key(config.search.seed)
            finisher = finisher_for(config, parts)
            final = read_final(run.best_dir)
            if final is None and config.final.retrain_top_k > 0:
                final = run_final(final_key(config), config, finisher,
                                  parts.encoding_options, best_rows, run.best_dir)
            front = None
            if config.search.multiobjective:
                front = read_front(run.paths.front)
                if front is None:
                    front = run_front(jax.random.fold_in(seed_key, _FRONT), config, finisher,
                                      parts.encoding_options, best_rows, run.paths.front)
            report = None
            if config.display.report:
                report = write_report(run.path)["html"]
            maximize = config.search.objectives[0].maximize
            ok = [r for r in best_rows if r["fitness"] is not None and not r["failed"]]
            sign = -1.0 if maximize else 1.0
            best = min(ok, key=lambda r: (sign * r["fitness"], r["id"])) if ok else None
            result = ExperimentResult(run.path, len(run.history.generations()), len(best_rows),
                                      best, final, report, front, config.final.retrain_top_k)
        for callback in callbacks:
            callback.on_end(dataclasses.asdict(result))
        return result

    def _search(self, run: RunDir, parts: Components, callbacks: list[Callback]) -> None:
        """The generations left in the budget, each committed and checkpointed."""
        config, strategy = self.config, parts.strategy
        seed_key = jax.random.key(config.search.seed)
        state = strategy.init(jax.random.fold_in(seed_key, _STRATEGY_INIT))
        checkpoint = run.resume(state, missing_ok=True)
        generation = 0
        if checkpoint is not None:
            state, generation = checkpoint.state, checkpoint.generation + 1
        done = run.history.generations()
        for callback in callbacks:
            callback.on_start(run.path, done)
        maximize = config.search.objectives[0].maximize
        best_so_far = None
        for summary in done:
            best_so_far = _better(best_so_far, summary["best"], maximize)
        weights = (ParamStore(run.paths.weights, run.path)
                   if config.train.inherit is not None and not config.evaluator.tabular
                   else None)
        if isinstance(parts.evaluator, OneShotEvaluator) and parts.evaluator.trained is None:
            parts.evaluator.attach(ParamStore(run.paths.supernet, run.path),
                                   jax.random.fold_in(seed_key, _SUPERNET))
        evaluate = GenerationEvaluator(config, parts.encoding, parts.evaluator, weights=weights)
        multi = num_objectives(strategy) > 1
        succeeded = best_so_far is not None
        search_key = jax.random.fold_in(seed_key, _SEARCH)
        while self._budget_left(generation, run.history.count()):
            if any(c.should_stop() for c in callbacks):
                break
            start = time.perf_counter()
            generation_key = jax.random.fold_in(search_key, generation)
            k_ask, k_eval = jax.random.split(generation_key)
            evaluate.on_new = lambda asked, new, g=generation: [
                c.on_evaluate(g, asked, new) for c in callbacks]
            genomes, state = strategy.ask(k_ask, state)
            if config.search.prefilter.proxy is not None:
                genomes = prefilter(jax.random.fold_in(generation_key, _PREFILTER), genomes,
                                    parts, config)
            parents = _parents(state, strategy.batch_size)
            result = evaluate.evaluate(k_eval, np.asarray(genomes), parents, run.history)
            told = result.objectives if multi else result.fitness
            state = strategy.tell(genomes, jnp.asarray(told), state)
            seconds = time.perf_counter() - start
            summary = _summary(result.fitness, maximize, seconds)
            believed = beliefs(strategy, state)
            if believed is not None:
                summary["beliefs"] = believed
            run.commit_generation(generation, result.rows, summary, state)
            if generation == 0 and config.search.constraints:
                _check_feasible(result.rows, config, run.path)
            _check_not_all_failed(result.rows, generation, succeeded, config, run.path)
            succeeded = succeeded or summary["best"] is not None
            best_so_far = _better(best_so_far, summary["best"], maximize)
            info = GenerationInfo(
                generation, config.search.generations, run.history.count(),
                config.search.evaluations, summary["best"], summary["median"], summary["worst"],
                best_so_far, result.trained, result.cached, result.failed, seconds,
                reasons=_reasons(result.rows), hint=failure_hint(config, _reasons(result.rows)),
            )
            for callback in callbacks:
                callback.on_generation(info)
            generation += 1


def follow_leader(session: distributed.Session) -> None:
    """A follower's part of a multi-process run: builds the experiment process 0 sends and
    trains every population it publishes, until its search ends.

    Raises:
        RuntimeError: process 0 stopped with an error (its first line).
    """
    def build(data: dict[str, Any]) -> Any:
        evaluator = build_components(ExperimentConfig.from_dict(data)).evaluator
        treedef = jax.tree.structure(evaluator.param_shapes())

        def train(call: distributed.Call) -> None:
            start = None if call.start is None else jax.tree.unflatten(treedef, call.start)
            train_population(call.key, evaluator.encoding, call.genomes, evaluator.dataset,
                             call.config, cache=evaluator.cache, start=start,
                             keep_params=call.keep_params)

        return train

    status = distributed.follow(session, lambda call: None, build)
    if status != "done":
        raise RuntimeError(f"process 0 stopped the run: {status}")
