"""LatencyMeter: times the exact-shape standalone model, once per architecture."""

import numpy as np
import pytest

from evonas.evaluators import LatencyMeter, time_call
from evonas.genomes import get_encoding

MLP = get_encoding("mlp", input_shape=(40,), num_classes=10, max_layers=2, widths=(8, 256))


def test_latency_is_positive_cached_and_per_architecture():
    meter = LatencyMeter(MLP, batch_size=4, repeats=5, warmup=1)
    genomes = np.stack([np.zeros(MLP.space.num_genes, np.int32),
                        np.asarray(MLP.space.cardinalities, np.int32) - 1])
    first = meter.measure_many(genomes)
    assert first.shape == (2,) and np.all(first > 0) and np.all(np.isfinite(first))
    assert len(meter) == 2
    # A second call is the cached value, exactly, and measures nothing new.
    assert meter(genomes[1]) == first[1]
    assert len(meter) == 2


def test_wider_batches_take_longer():
    # 512 examples through the largest MLP take longer than 1 example: the meter times real work.
    genome = np.asarray(MLP.space.cardinalities, np.int32) - 1
    one = LatencyMeter(MLP, batch_size=1, repeats=15)(genome)
    many = LatencyMeter(MLP, batch_size=2048, repeats=15)(genome)
    assert many > one


def test_time_call_measures_milliseconds():
    import time

    ms = time_call(lambda: time.sleep(0.01) or np.zeros(1), repeats=3, warmup=1)
    assert 9.0 < ms < 100.0


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("repeats", -1), ("warmup", 1.5)])
def test_bad_settings_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        LatencyMeter(MLP, **{field: value})


def test_input_shape_comes_from_the_encoding():
    nb201 = get_encoding("nb201", input_size=8, channels=4, cells_per_stage=1)
    meter = LatencyMeter(nb201, repeats=2, warmup=1)
    assert meter.input_shape == (8, 8, 3)
    assert meter(np.zeros(6, np.int32)) > 0
