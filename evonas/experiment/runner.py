"""``Experiment``: the host loop of a search: ask, de-duplicate, evaluate, tell, record, checkpoint.

Determinism and resume: every random number comes from ``search.seed`` by explicit key folding
(the streams of :mod:`evonas.streams`), ``fold_in(search_key, generation)`` for generation ``g``,
so generation ``g``'s keys are the same whether or not the process restarted in between. Each
generation is committed to the history and then checkpointed (the strategy state); a resumed run
restores the newest valid checkpoint, drops history rows it does not cover and continues, writing
exactly the rows an uninterrupted run writes. After the search come the final steps
(``evonas.experiment.finish``), then the report.

In a multi-process run (``evonas.experiment.distributed``) the session is passed in: process 0
runs the experiment and owns the run directory, and its training evaluator trains through the
session's trainer, which shares every population with the other processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import streams
from evonas.data import Dataset
from evonas.evaluators import TrainingEvaluator, describe_estimate
from evonas.experiment import distributed, warm_start
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
from evonas.experiment.finish import Finish, run_steps, scorer_for
from evonas.experiment.finish.finetune import check_final_data
from evonas.experiment.generation import GenerationEvaluator
from evonas.experiment.interrupts import Interrupts
from evonas.experiment.loading import check_fingerprint, legacy_fingerprints, run_config
from evonas.experiment.outcome import (
    AllFailedError,
    InfeasibleError,
    better,
    check_feasible,
    check_not_all_failed,
    failure_hint,
    reasons_of,
    summary,
)
from evonas.report import write_report
from evonas.store import NoCheckpointError, RunDir, RunDirError, RunPaths, read_json
from evonas.store.atomic import atomic_write_text
from evonas.store.run_dir import RunLock
from evonas.strategies import beliefs, diagnostics, num_objectives
from evonas.train import CompileCounter, enable_persistent_cache, train_population

__all__ = ["AllFailedError", "Experiment", "ExperimentResult", "InfeasibleError",
           "Interrupted", "follow_leader", "run_config"]


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
        models_wanted: how many models the final stage was asked for (final.retrain.top_k).
        already_finished: the run directory held a finished run: nothing was computed.
    """

    run_dir: Path
    generations: int
    evaluations: int
    best: dict[str, Any] | None
    final: dict[str, Any] | None
    report: Path | None
    front: dict[str, Any] | None = None
    models_wanted: int = 0
    already_finished: bool = False


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); ``run_dir`` keeps ``generations`` finished ones
    (``None``: the directory was removed, nothing had finished)."""

    def __init__(self, run_dir: Path, generations: int | None):
        super().__init__(f"interrupted: {run_dir}")
        self.run_dir = run_dir
        self.generations = generations


def default_run_dir(config: ExperimentConfig) -> Path:
    """``runs/<encoding>-<dataset>-<time>``: a new directory per run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = config.dataset.name.replace(":", "-")
    return Path("runs") / f"{config.encoding.name}-{dataset}-{stamp}"


# What evaluating a new architecture was, by how its fitness is estimated, for the progress line.
_VERBS = {"trained": "trained", "table": "looked up", "oneshot": "scored", "fewshot": "scored"}


def _parents(state: Any, batch: int) -> np.ndarray:
    """Parent ids of the last asked batch from the strategy state (-1 where unknown)."""
    parents = getattr(state, "parents", None)
    if parents is None:
        return np.full((batch, 1), -1, np.int32)
    return np.asarray(parents, np.int32).reshape(batch, -1)


def _seconds(generations: list[dict[str, Any]]) -> tuple[float, float]:
    """The wall seconds the committed generations took together, and the last one's."""
    seconds = [float(g.get("wall_seconds") or 0.0) for g in generations]
    return float(sum(seconds)), (seconds[-1] if seconds else 0.0)


def base_evaluator(evaluator: Any) -> Any:
    """The evaluator at the centre of a chain of wrappers."""
    while hasattr(evaluator, "inner"):
        evaluator = evaluator.inner
    return evaluator


class Experiment:
    """One search experiment: ``Experiment(config).run()``, or ``Experiment.resume(dir).run()``.

    Args:
        config: the experiment.
        callbacks: extra callbacks (progress, JSON lines, TensorBoard and early stopping come
            from the config).
        run_dir: the run directory; default ``config.run_dir``, else ``runs/<...>-<time>``. An
            existing run of the same experiment is continued.
        session: this process's part in a multi-process run (``evonas.experiment.distributed``),
            or None.
        dataset: data given in Python (``evonas.Dataset.from_arrays(x, y)``) instead of
            ``config.dataset``; its content digest is recorded, and a resume takes the same
            data again (``Experiment.resume(dir, dataset=...)``).
    """

    def __init__(self, config: ExperimentConfig, *, callbacks: Sequence[Callback] = (),
                 run_dir: str | os.PathLike | None = None,
                 session: distributed.Session | None = None, dataset: Dataset | None = None):
        if dataset is not None and config.dataset.name != "arrays":  # the data is the given
            config = dataclasses.replace(config, dataset=dataclasses.replace(
                config.dataset, name="arrays", path=None, label=None, image_size=None))
        self.config = config
        self.dataset = dataset
        chosen = run_dir if run_dir is not None else config.run_dir
        self.run_dir = Path(chosen) if chosen is not None else default_run_dir(config)
        self.extra_callbacks = list(callbacks)
        self.session = session
        self.interrupts = Interrupts()

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, *, callbacks: Sequence[Callback] = (),
               compile_cache_dir: str | None = "auto",
               session: distributed.Session | None = None,
               dataset: Dataset | None = None) -> Experiment:
        """The experiment of an existing run directory, to continue from its last checkpoint.

        The directory's ``config.yaml`` may come from someone else, so what it names that would
        load code is not taken from it: ``train.compile_cache_dir`` (JAX loads compiled native
        code from there) is the caller's ``compile_cache_dir``, and plug-ins are never loaded.

        Args:
            run_dir: the run directory.
            callbacks: extra callbacks.
            compile_cache_dir: the persistent compilation cache for this process: ``"auto"``
                (your cache directory), a directory, or None (none).
            session: as for the constructor.
            dataset: the data a run on data given in Python started with.

        Raises:
            RunDirError: not a run directory, or its config no longer matches its fingerprint.
            NoCheckpointError: no checkpoint yet (start it again with ``evonas run``).
        """
        run = RunDir(run_dir, readonly=True)
        RunLock.check_free(run.path)
        config = run_config(run)
        check_fingerprint(run, config)
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
        done = run.history.generations() if started else []
        run.close()
        if not steps and not started:
            raise NoCheckpointError(
                f"no checkpoint in {run.checkpoints_dir}: nothing to resume; start it again with "
                f"`evonas run {run.config_path} --run-dir {run.path}`"
            )
        if config.dataset.name == "arrays" and dataset is None:
            raise ValueError(f"{run.path} searched data given in Python: resume it with "
                             "Experiment.resume(DIR, dataset=evonas.Dataset.from_arrays(...)) "
                             "on the same data")
        experiment = cls(config, callbacks=callbacks, run_dir=run_dir, session=session,
                         dataset=dataset)
        if (run.fingerprint_version < FINGERPRINT_VERSION and config.evaluator.prefilter
                and experiment._budget_left(len(done), sum(g["evaluations"] for g in done),
                                            *_seconds(done))):
            raise RunDirError(
                f"{run.path} screened its genomes with the prefilter of evonas before 0.2, whose "
                "random draws differ from today's: it can't continue to the rows it would have "
                "computed. Its committed generations stay readable (evonas report, front); "
                "start the search again in a new directory")
        return experiment

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

    def _budget_left(self, generation: int, evaluations: int, seconds: float = 0.0,
                     last: float = 0.0) -> bool:
        """Whether the search may run another generation: ``generation`` generations and
        ``evaluations`` evaluations done, in ``seconds`` of generations, the last of which took
        ``last`` seconds. A time budget starts no generation that would end past it if it took
        as long as the last one: the search ends near its budget, not a generation after it."""
        search = self.config.search
        if search.generations is not None and generation >= search.generations:
            return False
        if search.time_budget is not None and seconds + last > search.time_budget:
            return False
        return search.evaluations is None or evaluations < search.evaluations

    def run(self) -> ExperimentResult | None:
        """Runs (or continues) the search, the final steps and the report.

        In a multi-process run this is the call of every process: process 0 runs the experiment
        and owns the run directory; on the others it trains the populations process 0 publishes
        (taking the experiment from process 0, not from ``config``) and returns None once the
        search ends.

        A run directory this call created is removed again if the run fails (or is
        interrupted) before its first generation is committed, so a corrected command can use
        it; committed generations are never removed.

        Raises:
            ValueError: the config can't be built; RunDirError: the run directory holds another
                experiment, can't be written or is in use. Both are raised before anything is
                written. AllFailedError / InfeasibleError: nothing could be selected.
            Interrupted: Ctrl-C; says what the directory keeps.
        """
        session = self.session
        if session is not None and not session.leader:
            follow_leader(session)
            return None
        try:
            with self.interrupts:
                return self._lead()
        finally:
            if session is not None:  # an error before the search: the followers stop too
                session.close("process 0 stopped before its search ended")

    def _lead(self) -> ExperimentResult:
        config, session = self.config, self.session
        if self.dataset is not None and session is not None:
            raise ValueError("data given in Python can't be shared with other processes: save "
                             "it (np.savez) and use dataset: {name: npz, path: FILE}")
        check_final_data(config)  # the final stage's other data: before anything is created
        enable_persistent_cache(config.train.compile_cache_dir)  # before anything compiles
        parts = build_components(config, trainer=None if session is None else session.trainer,
                                 dataset=self.dataset)
        seed = self._warm_seed(parts)
        if seed is not None:
            parts = parts._replace(strategy=warm_start.warm(parts.strategy, seed))
        callbacks = self._callbacks()
        # The plan as the runner resolves it (auto: by platform) is what the directory records
        # and fingerprints: a resume elsewhere runs the same plan, hence the same numbers.
        train = dataclasses.replace(config.train, plan=runner_plan(config.train.plan))
        dataset = dataclasses.replace(config.dataset, digest=self._digest(parts))
        resolved = dataclasses.replace(config, run_dir=os.fspath(self.run_dir), train=train,
                                       dataset=dataset)
        run = RunDir.create(self.run_dir, resolved.to_dict(), resolved.fingerprint(),
                            fingerprint_version=FINGERPRINT_VERSION,
                            legacy=legacy_fingerprints(resolved))
        if session is not None:
            self._share(session, resolved, parts, run.path)
        try:
            if seed is not None and not run.paths.warm_start.exists():
                if getattr(parts.evaluator, "warm_supernet", False):
                    warm_start.hand_over_supernet(seed, run)  # before the seed: its marker
                warm_start.save_seed(run, seed)
            if run.created and parts.dataset is not None:  # what was searched, class names too
                info = {**parts.dataset.info(), "preprocessing": parts.dataset.preprocessing()}
                atomic_write_text(run.paths.dataset_info, json.dumps(info, indent=2) + "\n",
                                  run.path)
            return self._run(run, parts, callbacks)
        except KeyboardInterrupt:
            raise Interrupted(run.path, self._discard_if_empty(run)) from None
        except BaseException:
            self._discard_if_empty(run)
            raise

    def _warm_seed(self, parts: Components) -> warm_start.Seed | None:
        """What ``search.warm_start`` hands this run: kept in the run directory by its first
        start (a resume reads that, not the earlier run), else read from the earlier run."""
        source = self.config.search.warm_start
        if source is None:
            return None
        if RunPaths(self.run_dir).run_info.is_file():
            kept = warm_start.load_seed(self.run_dir, parts.encoding.space)
            if kept is not None:
                return kept
        return warm_start.read_seed(source, self.config, parts.encoding.space,
                                    warm_start.how_many(parts.strategy), run_dir=self.run_dir)

    def _digest(self, parts: Components) -> str | None:
        """The data's content digest the run records (and fingerprints): the one an existing
        run at the directory started with (None for a run of before digests: not checked),
        else this data's.

        Raises:
            ValueError: the directory's run started on other data.
        """
        have = None if parts.dataset is None else parts.dataset.digest
        if not RunPaths(self.run_dir).run_info.is_file():
            return have
        try:
            recorded = run_config(RunDir(self.run_dir, readonly=True)).dataset.digest
        except (ValueError, OSError):
            return have  # not a run evonas can read: RunDir.create says why
        if recorded is not None and recorded != have:
            raise ValueError(
                f"{self.run_dir} holds a run that started on other data (content digest "
                f"{recorded[:12]}; this data's {str(have)[:12]}): resume it on the same data, "
                "or pick another --run-dir")
        return recorded

    def _share(self, session: distributed.Session, resolved: ExperimentConfig,
               parts: Components, path: Path) -> None:
        """Hands the experiment to the other processes, or lets them go when its evaluator
        does not train populations (a table, one-shot scoring: process 0 alone computes)."""
        session.context = (f"; committed generations are kept in {path}: run `evonas resume "
                           f"{path}` with the same distributed options on every process")
        base = base_evaluator(parts.evaluator)
        if type(base) is not TrainingEvaluator:
            warnings.warn(f"the {type(base).__name__} trains no populations to share: process 0 "
                          "runs this experiment alone and the other processes stop",
                          stacklevel=3)
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
        if not run.is_here():  # moved or replaced while it ran: what is there is not this run's
            raise run.moved_error() from None
        done = len(RunDir(run.path, readonly=True).history.generations()) if (
            run.paths.history.is_file()) else 0
        if done or not run.created:
            return done
        run.discard()
        return None

    def _run(self, run: RunDir, parts: Components, callbacks: list[Callback]
             ) -> ExperimentResult:
        config, session = self.config, self.session
        with run:
            # Finished: the search's budget is spent and the final model, if one is wanted,
            # is exported (a resume then computes nothing).
            finished = (run.paths.final.is_file() or config.final.retrain.top_k == 0) and (
                not self._budget_left(len(run.history.generations()), run.history.count(),
                                      *_seconds(run.history.generations())))
            try:
                self._search(run, parts, callbacks)
            except BaseException as err:
                if session is not None:
                    why = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    session.close(f"{type(err).__name__}: {why}" if why else type(err).__name__)
                raise
            if session is not None:  # the rest is process 0's alone, on its own devices
                session.close("done")
            rows = run.history.rows()
            def guard() -> None:
                self.interrupts.check()
                run.ensure_here()

            finish = Finish(config, run.write_root, rows, *scorer_for(config, parts), guard=guard,
                            progress=lambda text: [c.on_final(text) for c in callbacks],
                            legacy_keys=run.fingerprint_version < FINGERPRINT_VERSION)
            final = run_steps(finish)
            front = read_json(run.paths.front_file) if config.search.multiobjective else None
            guard()
            report = write_report(run.path)["html"] if config.display.report else None
            maximize = config.search.objectives[0].maximize
            ok = [r for r in rows if r["fitness"] is not None and not r["failed"]]
            sign = -1.0 if maximize else 1.0
            best = min(ok, key=lambda r: (sign * r["fitness"], r["id"])) if ok else None
            result = ExperimentResult(run.path, len(run.history.generations()), len(rows),
                                      best, final, report, front, config.final.retrain.top_k,
                                      finished)
        for callback in callbacks:
            callback.on_end(dataclasses.asdict(result))
        return result

    def _start(self, run: RunDir, parts: Components) -> tuple[Any, int]:
        """The strategy state and the next generation: restored from the newest checkpoint,
        or the strategy's start; the evaluator attached to the run directory."""
        seed_key = jax.random.key(self.config.search.seed)
        state = parts.strategy.init(streams.stream(seed_key, "strategy_init"))
        checkpoint = run.resume(state, missing_ok=True)
        attach = getattr(parts.evaluator, "attach", None)
        if attach is not None:
            attach(RunPaths(run.path), seed_key)
        if checkpoint is None:
            return state, 0
        return checkpoint.state, checkpoint.generation + 1

    def _search(self, run: RunDir, parts: Components, callbacks: list[Callback]) -> None:
        """The generations left in the budget, each committed and checkpointed."""
        config, strategy = self.config, parts.strategy
        state, generation = self._start(run, parts)
        done = run.history.generations()
        for callback in callbacks:
            callback.on_start(run.path, done)
        maximize = config.search.objectives[0].maximize
        best_so_far = None
        for earlier in done:
            best_so_far = better(best_so_far, earlier["best"], maximize)
        evaluate = GenerationEvaluator(config, parts.encoding, parts.evaluator,
                                       estimate_prefix=getattr(strategy, "estimate_prefix", ""))
        multi = num_objectives(strategy) > 1
        succeeded = best_so_far is not None
        verb = _VERBS.get(describe_estimate(parts.evaluator), "evaluated")
        search_key = streams.stream(config.search.seed, "search")
        while self._budget_left(generation, run.history.count(),
                                *_seconds(run.history.generations())):
            self.interrupts.check()
            if any(c.should_stop() for c in callbacks):
                break
            start = time.perf_counter()
            k_ask, k_eval, k_tell = streams.generation_keys(search_key, generation)
            evaluate.on_new = lambda asked, new, g=generation: [
                c.on_evaluate(g, asked, new) for c in callbacks]
            with CompileCounter(all_threads=True) as compiled:
                genomes, state = strategy.ask(k_ask, state)
                parents = _parents(state, strategy.batch_size)
                result = evaluate.evaluate(k_eval, np.asarray(genomes), parents, run.history)
                told = result.objectives if multi else result.fitness
                state = strategy.tell(k_tell, genomes, jnp.asarray(told), state)
            self.interrupts.check()
            seconds = time.perf_counter() - start
            generation_summary = summary(result.fitness, maximize, seconds)
            believed = beliefs(strategy, state)
            if believed is not None:
                generation_summary["beliefs"] = believed
            noted = diagnostics(strategy, state)
            if noted is not None:
                generation_summary["diagnostics"] = noted
            run.commit_generation(generation, result.rows, generation_summary, state)
            if generation == 0 and config.search.constraints:
                check_feasible(result.rows, config, run.path)
            check_not_all_failed(result.rows, generation, succeeded, config, run.path)
            succeeded = succeeded or generation_summary["best"] is not None
            best_so_far = better(best_so_far, generation_summary["best"], maximize)
            reasons = reasons_of(result.rows)
            info = GenerationInfo(
                generation, config.search.generations, run.history.count(),
                config.search.evaluations, generation_summary["best"],
                generation_summary["median"], generation_summary["worst"], best_so_far,
                result.trained, result.cached, result.failed, seconds, reasons=reasons,
                hint=failure_hint(config, reasons), verb=verb,
                seconds_left=None if config.search.time_budget is None else (
                    config.search.time_budget - _seconds(run.history.generations())[0]),
                compiles=compiled.compiles, compile_seconds=round(compiled.seconds, 3),
                programs_loaded=compiled.disk_hits)
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
        parts = build_components(ExperimentConfig.from_dict(data))
        trainer = base_evaluator(parts.evaluator)
        treedef = jax.tree.structure(trainer.param_shapes())

        def train(call: distributed.Call) -> None:
            start = None if call.start is None else jax.tree.unflatten(treedef, call.start)
            train_population(call.key, trainer.encoding, call.genomes, trainer.dataset,
                             call.config, cache=trainer.cache, start=start,
                             keep_params=call.keep_params, halving=call.halving,
                             session=session)

        return train

    distributed.follow_leader(session, build)
