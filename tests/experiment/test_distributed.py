"""The distributed settings' checks and the padding note (no processes started here; the
multi-process runs themselves are in tests/test_multiprocess.py)."""

from __future__ import annotations

import pytest

from evonas.experiment import distributed


@pytest.mark.parametrize("settings, fragment", [
    (("h:1", 2, None), "missing --process-id"),
    ((None, 2, 0), "missing --coordinator"),
    (("h:1", 2, 5), "--process-id must be in 0..1 (--num-processes 2); got 5"),
    (("h:1", 2, -1), "--process-id must be in 0..1"),
    (("h:1", 2, 2), "--process-id must be in 0..1 (--num-processes 2); got 2"),
    (("h:1", 0, 0), "--num-processes must be an integer >= 1; got 0"),
    (("h", 2, 0), "--coordinator must look like HOST:PORT"),
    (("h:0", 2, 0), "port in 1..65535"),
    (("h:99999", 2, 0), "port in 1..65535"),
])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ValueError) as err:
        distributed.check_settings(*settings)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_detection_is_exclusive_and_timeouts_positive():
    with pytest.raises(ValueError, match="give it alone"):
        distributed.check_settings("h:1", 2, 0, detect=True)
    with pytest.raises(ValueError, match="--peer-timeout must be a positive number"):
        distributed.check_settings(None, None, None, peer_timeout=0)
    with pytest.raises(ValueError, match="--coordinator-timeout must be a positive number"):
        distributed.check_settings(None, None, None, timeout=-1)
    distributed.check_settings("[::1]:1234", 4, 3)  # IPv6 hosts in brackets
    assert distributed.parse_coordinator("[::1]:1234") == ("::1", 1234)


def test_a_population_that_does_not_divide_says_what_padding_costs():
    assert distributed.population_note(8, 4) is None
    note = distributed.population_note(6, 4)
    assert "padded to 8 (2 discarded copies, 25% of the compute)" in note
    assert "sizes without padding: 4, 8" in note
    assert "sizes without padding: 4" in distributed.population_note(3, 4)
    assert distributed.join() is None  # no settings: a single-process run, no session
