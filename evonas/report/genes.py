"""The genes of a run, by the names its search space gives them.

A history stores genomes as bare integer vectors. Their names and the labels of their values
(``op_0 = conv5``) belong to the search space, which the run's ``config.yaml`` names: the space
is rebuilt from the config's ``encoding`` section through the encodings' registry (the
built-ins and installed packages' entry points, as ``evonas resume`` does), never by importing
the plug-ins the config lists, which may come from someone else. Where that can't be done (a
plug-in encoding, a config that doesn't build), the names come from the descriptions' ``genes``
mapping when there is one, else ``gene_<i>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from evonas.report.history import Evaluation


@dataclasses.dataclass(frozen=True)
class Genes:
    """Names of a run's genes and labels of their values.

    Attributes:
        names: one name per gene, in genome order.
        labels: per gene, the label of each value (``None``: the values are shown as numbers).
        source: where the names came from: ``"space"``, ``"descriptions"`` or ``"index"``.
    """

    names: tuple[str, ...]
    labels: tuple[tuple[str, ...] | None, ...]
    source: str

    def label(self, gene: int, value: int) -> str:
        """The readable value of gene ``gene`` (its choice's label, else the integer)."""
        labels = self.labels[gene] if gene < len(self.labels) else None
        if labels is not None and 0 <= value < len(labels):
            return labels[value]
        return str(value)

    def as_json(self) -> list[dict[str, Any]]:
        """``[{"name": ..., "labels": [...] | None}]``, for the interactive views."""
        return [{"name": n, "labels": None if lab is None else list(lab)}
                for n, lab in zip(self.names, self.labels)]


def _label(value: Any) -> str:
    return str(value)


_MAX_OPTION = 1_000_000  # a larger number in a config's encoding options is no real space's
_MAX_ITEMS = 10_000


def _modest(value: Any, depth: int = 0) -> bool:
    """Options that can describe a real space: a config from someone else must not make the
    report build a space of a billion genes."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return not isinstance(value, str) or len(value) <= _MAX_ITEMS
    if isinstance(value, (int, float)):
        return abs(value) <= _MAX_OPTION
    if isinstance(value, (list, tuple, Mapping)) and depth < 8 and len(value) <= _MAX_ITEMS:
        items = value.values() if isinstance(value, Mapping) else value
        return all(_modest(v, depth + 1) for v in items)
    return False


def space_from_config(config: Any) -> Any:
    """The ``GenomeSpace`` of the encoding a run's config names, or None when it can't be built.

    Options with numbers beyond any real space's (over a million) are not built.

    Args:
        config: the parsed ``config.yaml`` (plain data; anything else gives None).
    """
    encoding = config.get("encoding") if isinstance(config, Mapping) else None
    if not isinstance(encoding, Mapping) or not isinstance(encoding.get("name"), str):
        return None
    options = encoding.get("options") or {}
    if not isinstance(options, Mapping) or not _modest(options):
        return None
    from evonas.genomes import get_encoding

    try:
        return get_encoding(encoding["name"], **{str(k): v for k, v in options.items()}).space
    except Exception:  # any failure of a factory only costs the names
        return None


def _from_descriptions(evaluations: Sequence[Evaluation], num_genes: int) -> Genes | None:
    """Names from a description's ``genes`` mapping with one name per gene; value labels from
    every description that shows a value not labelled yet."""
    names = None
    for e in evaluations:
        genes = e.description.get("genes")
        if isinstance(genes, Mapping) and len(genes) == num_genes:
            names = [str(k) for k in genes]
            break
    if names is None:
        return None
    labels: list[dict[int, str]] = [{} for _ in names]
    for e in evaluations:
        if e.genome is None or len(e.genome) != num_genes:
            continue
        if all(e.genome[i] in labels[i] for i in range(num_genes)):
            continue
        genes = e.description.get("genes")
        if not isinstance(genes, Mapping):
            continue
        for i, name in enumerate(names):
            value = genes.get(name)
            if e.genome[i] not in labels[i] and value is not None and not isinstance(
                    value, (dict, list)):
                labels[i][e.genome[i]] = _label(value)
    out = []
    for found in labels:
        if not found or min(found) < 0:
            out.append(None)
            continue
        top = max(found)
        out.append(tuple(found.get(v, str(v)) for v in range(top + 1)))
    return Genes(tuple(names), tuple(out), "descriptions")


def run_genes(evaluations: Sequence[Evaluation], config: Any = None,
              space: Any = None) -> Genes:
    """The run's gene names and value labels (see the module's docstring for the order tried).

    Args:
        evaluations: the history's rows (their genome length decides the gene count).
        config: the parsed ``config.yaml``, from which the space is rebuilt.
        space: the ``GenomeSpace`` itself, when the caller has it (it wins).
    """
    lengths = [len(e.genome) for e in evaluations if e.genome is not None]
    num_genes = max(set(lengths), key=lengths.count) if lengths else None
    if space is None:
        space = space_from_config(config)
    if space is not None and (num_genes is None or space.num_genes == num_genes):
        labels = tuple(None if ch is None else tuple(_label(c) for c in ch)
                       for ch in space.choices)
        return Genes(tuple(space.names), labels, "space")
    if num_genes is None:
        return Genes((), (), "index")
    found = _from_descriptions(evaluations, num_genes)
    if found is not None:
        return found
    return Genes(tuple(f"gene_{i}" for i in range(num_genes)), (None,) * num_genes, "index")
