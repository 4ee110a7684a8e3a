"""``describe``: one genome of an encoding, read from text and described (``evonas describe``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evonas.benchmarks import BENCHMARKS, get_benchmark
from evonas.genomes import cost_names, get_encoding, parse_genome


def read_genome(encoding_name: str, encoding: Any, text: str) -> np.ndarray:
    """A genome from text, in the first notation that takes it: the encoding's own (``parse``),
    the notation of the benchmark table registered under the encoding's name (NAS-Bench-201's
    index: ``"0"``), then the generic one (:func:`evonas.genomes.parse_genome`)."""
    parse = getattr(encoding, "parse", None)
    if parse is not None and parse(text) is not None:
        return parse_genome(encoding, text)
    if encoding_name in BENCHMARKS.names():
        table = get_benchmark(encoding_name)
        if table.parse is not None and table.encoding.space == encoding.space:
            genome = table.parse(str(text).strip())
            if genome is not None:
                return encoding.space.validate(genome)
    return parse_genome(encoding, text)


def describe(encoding_name: str, text: str, options: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The genome ``text`` of encoding ``encoding_name``: genes, description and costs.

    Raises:
        ValueError: an unknown encoding or option, or text no notation reads.
    """
    encoding = get_encoding(encoding_name, **dict(options or {}))
    cost_names(encoding)  # cost returns one number per name, or one line saying what it did
    genome = read_genome(encoding_name, encoding, text)
    return {
        "encoding": encoding_name,
        "genome": genome.tolist(),
        "genes": encoding.space.to_dict(genome),
        "description": encoding.describe(genome),
        "cost": {k: float(v) for k, v in encoding.cost(genome).items()},
    }
