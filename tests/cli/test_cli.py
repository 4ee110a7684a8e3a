"""The command line: describe, list, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from evonas.cli import main

ARCH0 = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_nb201_by_index_reports_the_benchmark_parameter_count(capsys):
    code, out, _ = run_cli(capsys, "describe", "nb201", "0")
    assert code == 0
    info = json.loads(out)
    assert info["description"]["arch_str"] == ARCH0
    # NAS-Bench-201 records 0.129306 M parameters for arch 0 on CIFAR-10.
    assert info["cost"]["params"] == 129306


def test_describe_nb201_by_arch_string_and_options(capsys):
    code, out, _ = run_cli(capsys, "describe", "nb201", ARCH0, "-o", "num_classes=100")
    assert code == 0
    info = json.loads(out)
    assert info["genome"] == [4, 2, 1, 2, 1, 1]
    assert info["cost"]["params"] == 129306 + 90 * 64 + 90  # a wider classifier


def test_describe_generic_genome_notations(capsys):
    code, out, _ = run_cli(capsys, "describe", "nb201", "--compact", "[3, 3, 3, 3, 3, 3]")
    assert code == 0 and json.loads(out)["cost"]["params"] == 1531546


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    listing = json.loads(out)
    assert code == 0
    assert "nb201" in listing["encodings"]
    for name in ("random_search", "regularized_evolution", "genetic_algorithm", "evosax_CMA_ES"):
        assert name in listing["strategies"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["describe", "nb201", "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
         "conv_9x9"),
        (["describe", "nb201", "15625"], "15625"),
        (["describe", "nb201", "[0, 0, 0, 0, 0, 7]"], "allowed 0..4"),
        (["describe", "nbx201", "0"], "unknown encoding 'nbx201'"),
        (["describe", "nb201", "0", "-o", "colour=red"], "colour"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evonas: error: ")
    assert message in lines[0]


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "evonas.cli", "describe", "nb201", "0", "--compact"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cost"]["params"] == 129306


def test_bench_nb201_multiobjective_under_a_constraint(capsys):
    code, out, _ = run_cli(capsys, "bench", "nb201", "--strategy", "nsga2", "--objective",
                           "edgegpu_latency", "--constraint", "edgegpu_latency <= 5 ms",
                           "--runs", "2", "--budget", "100", "--set", "population_size=20",
                           "--compact")
    assert code == 0
    result = json.loads(out)
    assert result["objectives"] == ["test_acc", "edgegpu_latency"]
    assert 0.0 <= result["hv_gap"]["100"] <= result["hv_gap"]["30"] <= 1.0
    front = result["front_of_run_0"]
    assert front and all(m["edgegpu_latency"] <= 5.0 for m in front)
    accs = [m["test_acc"] for m in front]
    lats = [m["edgegpu_latency"] for m in front]
    assert accs == sorted(accs, reverse=True) and lats == sorted(lats, reverse=True)
