"""An experiment's config read back from its run directory, and checked against its fingerprint.

A run directory may come from someone else: its ``config.yaml`` is read with the config's own
checks, the plug-ins it lists are never loaded (a name they would have registered fails with a
hint to pass ``--plugin``), and its fingerprint is recomputed the way the evonas that wrote it
computed it (``run.json`` records the version), so an edited config is refused.
"""

from __future__ import annotations

import warnings

from evonas.experiment import legacy
from evonas.experiment.config import FINGERPRINT_VERSION, ExperimentConfig
from evonas.store import RunDir, RunDirError


def run_config(run: RunDir) -> ExperimentConfig:
    """The experiment of a run directory, from its ``config.yaml`` (keys of an earlier layout
    read under their new names, without a warning: the directory was written that way).

    Raises:
        ValueError: the config does not load.
    """
    data = run.config
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return ExperimentConfig.from_dict(data)
    except ValueError as err:
        plugins = data.get("plugins") if isinstance(data, dict) else None
        if plugins and "unknown name" in str(err):
            raise ValueError(f"{str(err).splitlines()[0]}. This run used the plug-ins "
                             f"{list(plugins)}, which are never loaded from a run directory: "
                             "pass them again with --plugin") from None
        raise


def check_fingerprint(run: RunDir, config: ExperimentConfig) -> None:
    """The run directory's config is the one it recorded the fingerprint of.

    Version 3 is recomputed from the loaded config; versions 1 and 2 from ``config.yaml`` as it
    is, in their flat layout.

    Raises:
        RunDirError: the config was edited, or a version this evonas does not know.
    """
    version = run.fingerprint_version
    if version in (1, 2):
        # The file as it was written (the old layout), or the config it loads to in that layout.
        held = {legacy.fingerprint(run.config, version), config.fingerprint(version)}
    elif version == FINGERPRINT_VERSION:
        held = {config.fingerprint()}
    else:
        raise RunDirError(f"{run.path} records fingerprint version {version}; this evonas knows "
                          f"versions 1 to {FINGERPRINT_VERSION}: use the evonas version that "
                          "wrote it")
    if run.fingerprint not in held:
        raise RunDirError(
            f"{run.config_path} no longer matches the run (fingerprint {run.fingerprint}); "
            "it was edited: restore it or start a new run"
        )


def legacy_fingerprints(config: ExperimentConfig) -> dict[int, str]:
    """The experiment's fingerprint under every earlier version, by version: a run directory
    that recorded one of them holds the same experiment."""
    return {version: config.fingerprint(version) for version in (1, 2)}
