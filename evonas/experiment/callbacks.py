"""Callbacks of the experiment's host loop: progress, JSON-lines metrics, TensorBoard, early stop.

A callback sees the run start (with the summaries of generations already done, so a resumed run
restores its state from the history, not from memory), every finished generation, and the end.
Callbacks only observe, except :class:`EarlyStopping`, whose decision is a pure function of the
history, so a resumed run stops exactly where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from evonas.store import RunPaths
from evonas.store.atomic import append_text, atomic_write_text, check_not_link, safe_dir


@dataclasses.dataclass(frozen=True)
class GenerationInfo:
    """What one finished generation reports to callbacks.

    Attributes:
        generation: its number (0-based).
        generations: the generation budget, or None.
        evaluations: rows in the history after it.
        max_evaluations: the evaluation budget, or None.
        best, median, worst: this generation's fitness (None when all failed).
        best_so_far: the best fitness of the whole run so far.
        trained, cached, failed: how many rows were trained, reused, failed.
        seconds: wall seconds of the generation.
        compiles, compile_seconds: XLA programs compiled during it, and the seconds they took
            (with ``programs_loaded``' loading).
        programs_loaded: programs loaded from the persistent compilation cache instead.
    """

    generation: int
    generations: int | None
    evaluations: int
    max_evaluations: int | None
    best: float | None
    median: float | None
    worst: float | None
    best_so_far: float | None
    trained: int
    cached: int
    failed: int
    seconds: float
    reasons: tuple[str, ...] = ()
    hint: str = ""
    verb: str = "trained"  # what evaluating a new architecture was: trained, looked up, scored
    seconds_left: float | None = None  # of search.time_budget (None: no time budget)
    compiles: int = 0
    compile_seconds: float = 0.0
    programs_loaded: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for shown_only in ("reasons", "hint", "verb", "seconds_left"):
            out.pop(shown_only)
        return out


class Callback:
    """Base class: every hook does nothing."""

    def on_start(self, run_dir: Path, done: list[dict[str, Any]]) -> None:
        """The loop starts; ``done`` holds the history's summaries of finished generations."""

    def on_evaluate(self, generation: int, asked: int, new: int) -> None:
        """A generation asked ``asked`` genomes, ``new`` of them never evaluated: they are being
        evaluated now (the long part of a generation)."""

    def on_generation(self, info: GenerationInfo) -> None:
        """A generation was committed to the history and checkpointed."""

    def should_stop(self) -> bool:
        """Whether the search should end before its budget."""
        return False

    def on_final(self, text: str) -> None:
        """A step of the final stage started something long (``text`` says what)."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """The run ended (search, final retraining and report done)."""


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress(Callback):
    """A rich progress bar over generations on a terminal, one plain log line each otherwise.

    Shows the best so far and the generation's median fitness, evaluations per second and the
    time left (from the mean generation time of this process).

    Args:
        stream: where to write (default stdout); a bar is drawn only if it is a terminal.
    """

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self._bar: Any = None
        self._task: Any = None
        self._times: list[float] = []
        self._evals: list[int] = []

    def on_start(self, run_dir: Path, done: list[dict[str, Any]]) -> None:
        self._done = len(done)
        self._start = time.perf_counter()

    def _eta(self, info: GenerationInfo) -> float | None:
        mean = sum(self._times) / len(self._times)
        left = []
        if info.generations is not None:
            left.append(info.generations - info.generation - 1)
        if info.max_evaluations is not None:
            per_generation = max(1.0, sum(self._evals) / len(self._evals))
            left.append(math.ceil((info.max_evaluations - info.evaluations) / per_generation))
        eta = mean * max(0, min(left)) if left else None
        if info.seconds_left is not None:  # the generation under way finishes past the budget
            by_time = mean * math.ceil(max(0.0, info.seconds_left) / max(mean, 1e-9))
            eta = by_time if eta is None else min(eta, by_time)
        return eta

    # A generation with this many new architectures says it started (it may take minutes).
    ANNOUNCE = 256

    def on_evaluate(self, generation: int, asked: int, new: int) -> None:
        if new >= self.ANNOUNCE and not self.stream.isatty():
            print(f"generation {generation + 1}: evaluating {new} new architectures of {asked} "
                  "asked ...", file=self.stream, flush=True)

    def on_generation(self, info: GenerationInfo) -> None:
        if info.failed and info.failed == info.trained + info.cached:
            print(f"warning: every architecture of generation {info.generation + 1} failed "
                  f"({'; '.join(info.reasons) or 'no reason recorded'}): {info.hint}",
                  file=self.stream, flush=True)
        self._times.append(info.seconds)
        self._evals.append(info.trained + info.cached)
        rate = (info.trained + info.cached) / max(info.seconds, 1e-9)
        eta = self._eta(info)
        fields = (f"best {_fmt(info.best_so_far)}  median {_fmt(info.median)}  "
                  f"{rate:.1f} eval/s  left {'?' if eta is None else _duration(eta)}")
        if info.compiles or info.programs_loaded:
            fields += (f"  compiled {info.compiles} ({info.compile_seconds:.1f} s)"
                       + (f", {info.programs_loaded} from cache" if info.programs_loaded else ""))
        if self.stream.isatty():
            self._draw(info, fields)
        else:
            total = "" if info.generations is None else f"/{info.generations}"
            print(f"generation {info.generation + 1}{total}  evaluations {info.evaluations}  "
                  f"{info.verb} {info.trained}  cached {info.cached}  failed {info.failed}  "
                  f"{fields}", file=self.stream, flush=True)

    def on_final(self, text: str) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        print(f"final stage: {text}", file=self.stream, flush=True)

    def _draw(self, info: GenerationInfo, fields: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as RichProgress

        if self._bar is None:
            from rich.console import Console

            self._bar = RichProgress(
                TextColumn("generation"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), console=Console(file=self.stream),
            )
            self._bar.start()
            self._task = self._bar.add_task("search", total=info.generations,
                                            completed=self._done, info="")
        self._bar.update(self._task, completed=info.generation + 1, info=fields)

    def on_end(self, summary: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _generation_of(line: str) -> int | None:
    """The generation of one JSON line, or None for a line that is not one (torn by a crash)."""
    try:
        record = json.loads(line)
        return int(record["generation"])
    except (ValueError, TypeError, KeyError):
        return None


class JsonLines(Callback):
    """Appends one JSON object per generation to ``run_dir/metrics.jsonl``.

    On start, lines of generations that the history no longer holds (dropped by a resume) are
    removed, and so is a last line torn by a crash, so the file matches the history; the rewrite
    is atomic and appends never follow a link.
    """

    def on_start(self, run_dir: Path, done: list[dict[str, Any]]) -> None:
        self.root = Path(run_dir)
        self.path = RunPaths(run_dir).metrics
        last = max((d["generation"] for d in done), default=-1)
        check_not_link(self.path)
        if self.path.is_file():
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            keep = [line for line in lines
                    if (g := _generation_of(line)) is not None and g <= last]
            if keep != lines:
                atomic_write_text(self.path, "".join(line + "\n" for line in keep), self.root)

    def on_generation(self, info: GenerationInfo) -> None:
        append_text(self.path, json.dumps(info.as_dict()) + "\n", self.root)


class TensorBoard(Callback):
    """Writes per-generation scalars (best, median, evaluations per second) with tensorboardX.

    Raises:
        ValueError: ``tensorboardX`` is not installed.
    """

    def __init__(self):
        try:
            import tensorboardX
        except ImportError:
            raise ValueError(
                "display.tensorboard=true needs the tensorboardX package, which is not "
                "installed; `pip install tensorboardX` or set display.tensorboard=false"
            ) from None
        self._module = tensorboardX
        self._writer: Any = None

    def on_start(self, run_dir: Path, done: list[dict[str, Any]]) -> None:
        directory = safe_dir(RunPaths(run_dir).tensorboard, run_dir)
        self._writer = self._module.SummaryWriter(str(directory))

    def on_generation(self, info: GenerationInfo) -> None:
        for name in ("best", "median", "worst", "best_so_far"):
            value = getattr(info, name)
            if value is not None:
                self._writer.add_scalar(f"fitness/{name}", value, info.generation)
        rate = (info.trained + info.cached) / max(info.seconds, 1e-9)
        self._writer.add_scalar("speed/evaluations_per_second", rate, info.generation)

    def on_end(self, summary: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.close()


class EarlyStopping(Callback):
    """Stops the search after ``patience`` generations without a better best fitness.

    Args:
        patience: generations without improvement tolerated.
        maximize: the fitness direction.
    """

    def __init__(self, patience: int, maximize: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer; got {patience!r}")
        self.patience = patience
        self.sign = 1.0 if maximize else -1.0
        self.best = -math.inf
        self.stale = 0

    def _see(self, best: float | None) -> None:
        score = -math.inf if best is None or not math.isfinite(best) else self.sign * best
        if score > self.best:
            self.best, self.stale = score, 0
        else:
            self.stale += 1

    def on_start(self, run_dir: Path, done: list[dict[str, Any]]) -> None:
        self.best, self.stale = -math.inf, 0
        for summary in done:  # replaying the history restores the state after a resume
            self._see(summary.get("best"))

    def on_generation(self, info: GenerationInfo) -> None:
        self._see(info.best)

    def should_stop(self) -> bool:
        return self.stale >= self.patience
