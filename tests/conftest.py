"""Test-session settings.

The suite compiles hundreds of tiny programs, and XLA's optimiser dominates their cost while
buying nothing at these sizes: compile at the lowest backend optimisation level, with XLA:CPU's
legacy loop emitters (the newer fusion emitters cost ~0.3 s of compile per program; the suite ran
6 min with them and 4 with these flags). Set before JAX is imported; a test that measures speed
runs its own subprocess with its own flags.
"""

import os

_FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                 "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()
