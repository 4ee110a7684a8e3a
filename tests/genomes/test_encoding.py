"""The encoding protocols' checks and notation: check_trainable, parse_genome, the registry."""

from __future__ import annotations

import dataclasses

import pytest

from evonas.genomes import (
    ConvEncoding,
    GenomeSpace,
    MLPEncoding,
    check_trainable,
    get_encoding,
    parse_genome,
)
from evonas.genomes.cell import CellEncoding


@pytest.mark.parametrize("encoding", [MLPEncoding(), ConvEncoding(), CellEncoding(
    channels=4, cells_per_stage=1)])
def test_built_in_encodings_are_trainable(encoding):
    assert check_trainable(encoding) is encoding


@dataclasses.dataclass(frozen=True)
class _NoBounds:
    """The MLP encoding without ``bounds``: what a half-written plug-in looks like."""

    inner: MLPEncoding = MLPEncoding(max_layers=2, widths=(8, 16))
    name = "half"

    @property
    def space(self):
        return self.inner.space

    def __getattr__(self, member):
        if member == "bounds":
            raise AttributeError(member)
        return getattr(self.inner, member)


def test_check_trainable_names_the_missing_member_and_its_contract():
    with pytest.raises(ValueError) as info:
        check_trainable(_NoBounds())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("_NoBounds is not a trainable encoding: bounds is missing; it "
                              "must be bounds(genome) -> a hashable value: the genome's exact "
                              "static shapes")


def test_check_trainable_names_every_wrong_member():
    class Broken:
        name = "broken"
        space = GenomeSpace.from_genes({"a": 2})

        def describe(self, genome):
            return {}

        def cost(self, genome, bounds=None):
            return {"params": 1.0}  # no flops, no executed counts

        def decode(self, genome):
            return genome

        def bounds(self, genome):
            return [1]  # unhashable

        def join(self, a, b):
            return a

        def max_bounds(self):
            return (1,)

        def supernet(self, bounds=None):
            return object()  # not a module

        def slice_params(self, params, bounds):
            return params

        build = 3  # not callable

    with pytest.raises(ValueError, match=r"build is not callable") as info:
        check_trainable(Broken())
    # Once every member exists, the deeper checks each name their member.
    del Broken.build
    with pytest.raises(ValueError) as info:
        check_trainable(Broken(), require_build=False)
    message = str(info.value)
    for part in ("bounds(genome) returned an unhashable list",
                 "join(bounds(genome), max_bounds()) is not max_bounds()",
                 "cost(genome, bounds) lacks ['flops', 'executed_params', 'executed_flops']",
                 "supernet(bounds) returned a object, which has no init/apply"):
        assert part in message


def test_parse_genome_tries_the_encoding_then_the_generic_notation():
    cell = CellEncoding()
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|" \
           "nor_conv_3x3~1|nor_conv_1x1~2|"
    assert parse_genome(cell, arch).tolist() == [3, 3, 3, 1, 3, 2]
    assert cell.parse("[0, 1, 2, 3, 4, 0]") is None  # declined: the generic notation reads it
    assert parse_genome(cell, "[0, 1, 2, 3, 4, 0]").tolist() == [0, 1, 2, 3, 4, 0]
    assert parse_genome(cell, "0,1,2,3,4,0").tolist() == [0, 1, 2, 3, 4, 0]
    mlp = MLPEncoding(max_layers=1, widths=(16, 32))
    assert parse_genome(mlp, '{"num_layers": 1, "width_0": 32, "activation_0": "relu"}'
                        ).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match=r"cannot read genome 'wide'"):
        parse_genome(mlp, "wide")
    with pytest.raises(ValueError, match=r"'edge_3_2' = 7 is outside its range"):
        parse_genome(cell, "0,0,0,0,0,7")


def test_an_option_the_factory_rejects_is_one_line_naming_it_and_the_factory():
    with pytest.raises(ValueError) as info:
        get_encoding("mlp", max_layer=3)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("encoding 'mlp' (evonas.genomes.mlp.MLPEncoding) takes no option "
                              "'max_layer' (did you mean 'max_layers'?); its options: ")
    with pytest.raises(ValueError, match=r"unknown encoding 'mpl' \(did you mean 'mlp'\?\)"):
        get_encoding("mpl")
    assert get_encoding("mlp", max_layers=3).max_layers == 3
