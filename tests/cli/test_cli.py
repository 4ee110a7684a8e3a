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


def test_bench_single_objective_is_the_library_search(capsys):
    import jax
    import numpy as np

    from evonas.benchmarks import nb201
    from evonas.evaluators import TabularEvaluator
    from evonas.strategies import get_strategy, run_searches, selected_true

    code, out, _ = run_cli(capsys, "bench", "nb201", "--dataset", "cifar100", "--runs", "4",
                           "--budget", "60", "--set", "population_size=10", "--set",
                           "sample_size=3", "--set", "batch_size=5", "--compact")
    assert code == 0
    result = json.loads(out)
    table = nb201.table("cifar100")
    strategy = get_strategy("regularized_evolution", table.space, population_size=10,
                            sample_size=3, batch_size=5)
    trace = run_searches(strategy, TabularEvaluator(table).search_fn(), jax.random.key(0), 4, 60)
    selected = selected_true(np.asarray(trace.observed), np.asarray(trace.true))
    assert result["final_mean"] == round(float(selected[:, -1].mean()), 4)
    assert result["regret"]["30"] == round(float((table.optimum() - selected[:, 29]).mean()), 4)
    assert result["protocol"] == "oracle tabular" and result["dataset"] == "cifar100"
    assert result["best"]["description"]["arch_str"].startswith("|")


def test_bench_counts_distinct_architectures(capsys):
    code, out, _ = run_cli(capsys, "bench", "nb201", "--runs", "2", "--budget", "50",
                           "--count", "unique", "--compact")
    assert code == 0
    result = json.loads(out)
    assert result["count"] == "unique" and result["canonical"] is True
    assert set(result["regret"]) == {"10", "30"}


def test_list_names_benchmarks_and_a_plugin_file_registers(capsys, tmp_path):
    plugin = tmp_path / "myspace.py"
    plugin.write_text(
        "import jax.numpy as jnp\nimport evonas\n\n"
        "class Mine:\n    name = 'mine_cli'\n    space = evonas.GenomeSpace.from_genes({'a': 3})\n"
        "    def describe(self, genome):\n        return self.space.to_dict(genome)\n"
        "    def cost(self, genome):\n"
        "        return {'params': jnp.asarray(genome)[0] * 1.0, 'flops': 0.0}\n\n"
        "evonas.register_encoding('mine_cli', Mine)\n")
    code, out, _ = run_cli(capsys, "describe", "--plugin", str(plugin), "mine_cli", "2")
    assert code == 0 and json.loads(out)["genes"] == {"a": 2}
    code, out, _ = run_cli(capsys, "list", "--json")
    listing = json.loads(out)
    assert "mine_cli" in listing["encodings"] and listing["benchmarks"] == ["nb201"]
    code, _, err = run_cli(capsys, "list", "--plugin", str(tmp_path / "missing.py"))
    assert code == 2 and "no such file" in err
    code, _, err = run_cli(capsys, "bench", "nb2001")
    assert code == 2 and "unknown benchmark 'nb2001' (did you mean 'nb201'?)" in err
