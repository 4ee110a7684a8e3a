"""Test-session settings.

The suite compiles hundreds of tiny programs, and XLA's optimiser dominates their cost while
buying nothing at these sizes: compile at the lowest backend optimisation level. Set before JAX
is imported; a test that measures speed runs its own subprocess with its own flags.
"""

import os

_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()
