"""Strict test settings: 8 fake CPU devices, no silent rank promotion, float32 by default."""

import os

# Must be set before jax initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _cached_cli(*args: str, cache, timeout: float = 900):
    """``python -m jaxbench.cli ARGS`` in a subprocess on one device with ``$JAXBENCH_CACHE`` at ``cache``."""
    import subprocess
    import sys

    env = {**os.environ, "JAXBENCH_CACHE": str(cache), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.run(
        [sys.executable, "-m", "jaxbench.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="session")
def cached_cli():
    """The CLI in a subprocess with its own generator cache: ``cached_cli(*args, cache=DIR)``."""
    return _cached_cli
