"""Test-session settings.

The suite compiles hundreds of tiny programs, and XLA's optimiser dominates their cost while
buying nothing at these sizes: compile at the lowest backend optimisation level, with XLA:CPU's
legacy loop emitters (the newer fusion emitters cost ~0.3 s of compile per program; the suite ran
6 min with them and 4 with these flags). Set before JAX is imported; options set here win over
``TrainConfig.xla``'s per-program choices, and the `evonas` subprocesses of the end-to-end tests
inherit them. A test that measures speed runs its own subprocess with its own flags (and is
marked ``alone``: ``make test`` runs it after the others, with the machine to itself).
"""

import os

_FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                 "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

# Many tests compile the same tiny programs again (in this process, in other workers, and in the
# `evonas` subprocesses the end-to-end tests start again and again: killed, resumed, on several
# processes). They all share one persistent compilation cache for this test session (a new
# directory per session, so every session starts cold). Compile counts stay right:
# `CompileCounter.compiles` does not count a program loaded from that cache.
if "EVONAS_TEST_COMPILE_CACHE" not in os.environ:  # the xdist workers inherit the controller's
    import tempfile

    os.environ["EVONAS_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="evonas-test-xla-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["EVONAS_TEST_COMPILE_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402,F401  (reads the XLA_FLAGS and JAX_* variables set above)


def pytest_collection_modifyitems(config, items):
    """The ``slow`` tests first, every other test after them in its order: with ``-n 2`` the
    workers take tests in collection order, and a long test taken last keeps one worker busy
    alone for minutes after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable sort
