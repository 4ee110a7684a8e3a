"""Tests for evonas.experiment.config: loading, validation, overrides and the fingerprint."""

from __future__ import annotations

import dataclasses
import math

import pytest

from evonas.experiment import ExperimentConfig, ObjectiveConfig, SearchConfig
from evonas.objectives import Constraint, parse_constraint
from evonas.train import TrainConfig


def _message(overrides: list[str]) -> str:
    with pytest.raises(ValueError) as info:
        ExperimentConfig().with_overrides(overrides)
    return str(info.value)


# -- defaults, dicts and YAML ------------------------------------------------------------------


def test_defaults_describe_the_default_experiment():
    config = ExperimentConfig()
    assert (config.encoding.name, config.dataset.name) == ("conv", "mnist1d")
    assert config.strategy.name == "regularized_evolution"
    assert config.search.generations * config.search.population_size == 80
    assert config.train == TrainConfig(steps=200)
    assert config.encoding.options["max_layers"] == 4
    assert config.search.objectives == (ObjectiveConfig("val_acc", "max"),)
    config.check_names()  # every default name is registered


def test_to_dict_writes_every_default_and_round_trips():
    config = ExperimentConfig()
    data = config.to_dict()
    assert list(data) == [*ExperimentConfig.SECTIONS, "run_dir", "plugins"]
    assert set(data["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert data["search"]["objectives"] == [{"name": "val_acc", "direction": "max"}]
    assert data["dataset"]["limit"] is None
    assert ExperimentConfig.from_dict(data) == config
    assert ExperimentConfig.from_dict({}) == config
    assert ExperimentConfig.from_dict(None) == config


def test_new_sections_keep_the_fingerprint_of_older_run_directories():
    """The default experiment's fingerprint, as evonas computed it before the evaluator and
    plugins keys existed: a run directory from then still resumes."""
    assert ExperimentConfig().fingerprint(1) == "32c41d26f631ed62"
    tabular = ExperimentConfig().with_overrides(["evaluator.name=tabular", "encoding.name=nb201"])
    assert tabular.fingerprint(1) != ExperimentConfig().fingerprint(1)
    plugged = ExperimentConfig().with_overrides(["plugins=[x.py]"])
    assert plugged.fingerprint(1) == ExperimentConfig().fingerprint(1)


def test_fields_added_since_version_2_keep_its_fingerprints():
    """Version-2 fingerprints as the first evonas to write them computed them (before proxies,
    halving, inheritance and one-shot existed): those directories still resume."""
    assert ExperimentConfig().fingerprint(2) == "33655ee78c1736c4"
    tabular = ExperimentConfig.from_dict({"encoding": {"name": "nb201"},
                                          "evaluator": {"name": "tabular"}})
    assert tabular.fingerprint(2) == "4ecc98005f18d175"
    for changed in (["evaluator.halving.rungs=[25]"], ["evaluator.inherit={}"],
                    ["evaluator.proxies=[snip]"], ["evaluator.name=oneshot"],
                    ["evaluator.name=oneshot", "evaluator.supernet_steps=100"]):
        for version in (2, 3):
            assert ExperimentConfig().with_overrides(changed).fingerprint(version) not in (
                ExperimentConfig().fingerprint(version),
                ExperimentConfig().with_overrides(changed[:1]).fingerprint(version)
                if len(changed) > 1 else None), changed


def test_objective_directions_come_from_the_metric_table():
    config = ExperimentConfig().with_overrides([
        "search.objectives=[{name: val_acc}, {name: params}, {name: edgegpu_latency}, "
        "{name: score}, {name: val_loss, direction: max}]", "strategy.name=nsga2"])
    assert [o.direction for o in config.search.objectives] == ["max", "min", "min", "max", "max"]


def test_evaluator_section_is_checked():
    with pytest.raises(ValueError, match=r"evaluator.name: unknown name 'table' \(did you mean "
                       r"'tabular'\?\).*oneshot.*training"):
        ExperimentConfig().with_overrides(["evaluator.name=table"])
    with pytest.raises(ValueError, match=r"evaluator.noise applies to the tabular evaluator only"):
        ExperimentConfig().with_overrides(["evaluator.noise=1.0"])
    with pytest.raises(ValueError, match=r"evaluator.benchmark \(default: encoding.name\): "
                       r"unknown name 'conv'.*available: nb201"):
        ExperimentConfig().with_overrides(["evaluator.name=tabular"])
    with pytest.raises(ValueError, match=r"evaluator.benchmark: unknown name 'nb2001' \(did "
                       r"you mean 'nb201'\?\)"):
        ExperimentConfig().with_overrides(["evaluator.name=tabular",
                                           "evaluator.benchmark=nb2001"])


def test_yaml_round_trip_and_partial_file(tmp_path):
    config = ExperimentConfig().with_overrides(["search.constraints=['params <= 200000']"])
    path = tmp_path / "full.yaml"
    path.write_text(config.to_yaml())
    assert ExperimentConfig.from_yaml(path) == config

    partial = tmp_path / "partial.yaml"
    partial.write_text("train:\n  learning_rate: 1e-3\n  steps: 50\nencoding:\n  name: mlp\n")
    loaded = ExperimentConfig.from_yaml(partial)
    assert loaded.train.learning_rate == pytest.approx(0.001)
    assert isinstance(loaded.train.learning_rate, float)
    assert loaded.train.steps == 50
    assert loaded.train.batch_size == TrainConfig().batch_size
    assert loaded.encoding.name == "mlp"

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert ExperimentConfig.from_yaml(empty) == ExperimentConfig()


def test_from_yaml_rejects_a_non_mapping_and_bad_yaml(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="the config must be a mapping"):
        ExperimentConfig.from_yaml(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {steps: [\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        ExperimentConfig.from_yaml(broken)


# -- validation ---------------------------------------------------------------------------------


def test_unknown_key_names_the_key_its_section_and_the_nearest_key():
    message = _message(["train.learnig_rate=0.1"])
    assert "unknown key 'train.learnig_rate' (did you mean 'learning_rate'?)" in message
    assert "section 'train'" in message
    assert "unknown key 'trian' (did you mean 'train'?)" in _message(["trian.steps=3"])
    nested = _message(["search.objectives=[{name: val_acc, dirction: max}]"])
    assert "unknown key 'search.objectives[0].dirction' (did you mean 'direction'?)" in nested


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps=abc", "train.steps must be an integer; got 'abc' (str)"),
        ("search.population_size=1.5", "search.population_size must be an integer; got 1.5"),
        ("display.progress=yes please", "display.progress must be true or false"),
        ("encoding.options=3", "encoding.options must be a mapping; got 3 (int)"),
        ("dataset.limit=true", "dataset.limit must be an integer or null; got True"),
        ("train=5", "train must be a mapping with keys"),
        ("search.constraints=params", "search.constraints must be a list of a string"),
    ],
)
def test_wrong_types_name_field_value_and_type(override, expected):
    assert expected in _message([override])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.plan=fast", "train.plan must be one of ['auto', 'masked', 'grouped']; got 'fast'"),
        ("search.objectives=[{name: val_acc, direction: up}]", "must be one of ['max', 'min']"),
        ("train.optimizer=adamw", "train.optimizer must be one of ['adam', 'sgd']"),
    ],
)
def test_enum_errors_list_the_allowed_values(override, expected):
    assert expected in _message([override])


@pytest.mark.parametrize(
    "override",
    [
        "search.population_size=0",
        "search.generations=-1",
        "search.evaluations=0",
        "train.batch_size=0",
        "train.steps=0",
        "final.retrain.steps=0",
        "final.retrain.top_k=-1",
        "dataset.limit=0",
    ],
)
def test_non_positive_sizes_are_rejected(override):
    key, _, value = override.partition("=")
    message = _message([override])
    assert key in message and value in message


def test_other_range_checks():
    fraction = _message(["dataset.val_fraction=1.5"])
    assert "dataset.val_fraction must be in (0, 1); got 1.5" in fraction
    budget = "set search.generations, search.evaluations or search.time_budget"
    assert budget in _message(["search.generations=null"])
    assert "at least one objective" in _message(["search.objectives=[]"])
    repeated = _message(["search.objectives=[{name: val_acc}, {name: val_acc, direction: min}]"])
    assert "repeated: ['val_acc']" in repeated
    assert "'params < lots' must look like" in _message(["search.constraints=[params < lots]"])
    # A budget by evaluations alone is enough; final.retrain.top_k=0 switches retraining off.
    ok = ExperimentConfig().with_overrides(
        ["search.generations=null", "search.evaluations=100", "final.retrain.top_k=0"])
    assert (ok.search.generations, ok.search.evaluations, ok.final.retrain.top_k) == (
        None, 100, 0)


def test_unknown_names_suggest_the_registered_ones():
    assert "unknown name 'mpl' (did you mean 'mlp'?)" in _message(["encoding.name=mpl"])
    strategy = _message(["strategy.name=regularised_evolution"])
    assert "strategy.name" in strategy and "did you mean 'regularized_evolution'?" in strategy
    assert "'tfds:<name>'" in _message(["dataset.name=mnist"])
    assert "strategy.name" in _message(["strategy.name=evosax_NoSuchES"])
    # Names outside the registries pass when built directly (the runner checks again).
    assert ExperimentConfig().with_overrides(["dataset.name=tfds:cifar10"]).dataset.name == (
        "tfds:cifar10")


def test_direct_construction_is_checked_too():
    with pytest.raises(ValueError, match="search.population_size must be an integer"):
        SearchConfig(population_size="16")
    with pytest.raises(ValueError, match="search.population_size must be > 0; got 0"):
        SearchConfig(population_size=0)
    search = SearchConfig(objectives=[{"name": "params", "direction": "min"}])
    assert search.objectives == (ObjectiveConfig("params", "min"),)
    assert not search.objectives[0].maximize


# -- overrides and the fingerprint ---------------------------------------------------------------


def test_with_overrides_parses_yaml_scalars_and_reaches_into_options():
    base = ExperimentConfig()
    config = base.with_overrides([
        "train.learning_rate=3e-4",
        "train.steps=25",
        "display.progress=false",
        "encoding.options.max_layers=2",
        "encoding.options.widths=[8, 16]",
        "strategy.params.sample_size=4",
        "run_dir=runs/x",
        "dataset.limit=null",
    ])
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.train.steps == 25
    assert config.display.progress is False
    # Overrides reach into the default conv options and leave the other options as they are.
    assert config.encoding.options["max_layers"] == 2
    assert config.encoding.options["widths"] == [8, 16]
    assert config.strategy.params == {"population_size": 16, "sample_size": 4}
    assert config.run_dir == "runs/x"
    assert base == ExperimentConfig()  # the original is unchanged


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps", "must look like section.key=value"),
        ("=3", "must look like section.key=value"),
        ("train..steps=3", "must look like section.key=value"),
        ("train.steps.x=1", "'train.steps' is a value (200), not a section"),
        ("train.steps=[1", "the value of override 'train.steps=[1' is not valid YAML"),
    ],
)
def test_malformed_overrides(override, expected):
    assert expected in _message([override])


def test_fingerprint_covers_what_determines_the_search_only():
    base = ExperimentConfig()
    fp = base.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert ExperimentConfig.from_dict(base.to_dict()).fingerprint() == fp
    same = base.with_overrides([
        "run_dir=elsewhere", "display.progress=false", "display.report=false",
        "train.compile_cache_dir=/tmp/cache", "plugins=[x.py]",
    ])
    assert same.fingerprint() == fp
    # The execution plan, steps per call and memory budget (chunk sizes) can change rounding.
    for change in ["train.steps=301", "search.seed=1", "encoding.options.max_layers=2",
                   "strategy.params.sample_size=5", "dataset.seed=3", "final.ensemble=false",
                   "search.constraints=['params <= 1000']", "train.learning_rate=0.02",
                   "train.plan=masked", "train.steps_per_call=4", "train.memory_budget_mb=64"]:
        assert base.with_overrides([change]).fingerprint() != fp, change
    # Version 1 (run directories that recorded no version) left those three out.
    for change in ["train.plan=masked", "train.steps_per_call=4", "train.memory_budget_mb=64"]:
        assert base.with_overrides([change]).fingerprint(1) == base.fingerprint(1)


def test_fingerprint_treats_equal_numbers_alike():
    a = ExperimentConfig().with_overrides(["train.learning_rate=1"])
    b = ExperimentConfig().with_overrides(["train.learning_rate=1.0"])
    assert a.fingerprint() == b.fingerprint()


# -- constraints ---------------------------------------------------------------------------------


def test_parse_constraint_and_holds():
    c = parse_constraint(" params <= 2e5 ")
    assert c == Constraint("params", "<=", 200000.0)
    assert c.holds(200000) and not c.holds(200001) and not c.holds(math.nan)
    assert parse_constraint("val_acc>0.5").holds(0.6)
    assert not parse_constraint("flops < 10").holds(10)
    assert parse_constraint("latency >= 3").holds(3)
    for bad in ["params = 3", "<= 3", "params <= ", "params <= inf", "3 <= params"]:
        with pytest.raises(ValueError, match="must look like 'METRIC OP NUMBER'"):
            parse_constraint(bad)
    search = ExperimentConfig().with_overrides(
        ["search.constraints=['params <= 1000', ' flops<5 ']"]).search
    assert search.constraints == ("params <= 1000", "flops<5")
    assert search.parsed_constraints() == (Constraint("params", "<=", 1000.0),
                                           Constraint("flops", "<", 5.0))


def test_a_strategy_named_without_params_gets_its_own_defaults():
    from evonas.experiment import ExperimentConfig

    config = ExperimentConfig.from_dict({"strategy": {"name": "nsga2"}})
    assert config.strategy.params == {}  # not regularized evolution's sample_size
    default = ExperimentConfig.from_dict({})
    assert default.strategy.params == {"population_size": 16, "sample_size": 4}
    assert ExperimentConfig.from_dict(default.to_dict()).fingerprint() == default.fingerprint()


def test_renaming_the_strategy_or_encoding_drops_the_other_ones_defaults():
    from evonas.experiment import ExperimentConfig

    config = ExperimentConfig.from_dict({}).with_overrides(
        ["strategy.name=nsga2", "encoding.name=mlp"])
    assert config.strategy.params == {} and config.encoding.options == {}
    kept = ExperimentConfig.from_dict({}).with_overrides(
        ["strategy.name=genetic_algorithm", "strategy.params.population_size=16"])
    assert kept.strategy.params == {"population_size": 16}  # what the user set stays


def test_a_section_given_in_part_keeps_the_defaults_other_values():
    """The embedded default trains 200 steps; ``train: {batch_size: ...}`` must not reset that
    to the class's own default."""
    config = ExperimentConfig.from_dict({"train": {"batch_size": 64},
                                         "evaluator": {"halving": {"rungs": [25, 75]}}})
    assert config.train.steps == ExperimentConfig().train.steps == 200
    assert config.evaluator.halving.rungs == (25, 75) and config.evaluator.halving.eta == 3
    with pytest.raises(ValueError, match=r"^evaluator.halving.rungs \[25, 200\] must be below "
                                         r"train.steps=200"):
        ExperimentConfig.from_dict({"evaluator": {"halving": {"rungs": [25, 200]}}})
    with pytest.raises(ValueError, match=r"^evaluator.halving.eta must be"):
        ExperimentConfig.from_dict({"evaluator": {"halving": {"rungs": [25], "eta": 1}}})


@pytest.mark.parametrize("data, message", [
    ({"evaluator": {"proxies": ["naswot", "jacov"]}},
     r"^evaluator.proxies must be one of \['naswot', 'synflow', 'grad_norm', 'snip'\]; got "
     r"'jacov'"),
    ({"evaluator": {"prefilter": {"proxy": "jacov"}}},
     r"^evaluator.prefilter.proxy .*got 'jacov'"),
    ({"evaluator": {"halving": {"eta": 1, "rungs": [50]}}}, r"^evaluator.halving.eta must be"),
    ({"evaluator": {"halving": {"rungs": [50, 300]}}},
     r"^evaluator.halving.rungs \[50, 300\] must be below train.steps=200"),
    ({"evaluator": {"inherit": {"steps": 500}}}, r"^evaluator.inherit.steps"),
    ({"evaluator": {"inherit": {}, "halving": {"rungs": [50]}}}, r"can't be combined"),
    # The flat keys of before the sections: mapped, and checked under their new names.
    ({"search": {"proxies": ["jacov"]}}, r"^evaluator.proxies must be one of"),
    ({"train": {"rungs": [50, 300]}},
     r"^evaluator.halving.rungs \[50, 300\] must be below train.steps=200"),
    ({"train": {"inherit": "grandparent"}}, r"^train.inherit .*'parent'.*got 'grandparent'"),
    ({"train": {"inherit": "parent", "inherit_steps": 500}}, r"^evaluator.inherit.steps"),
    ({"final": {"retrain_top_k": 2, "retrain": {"top_k": 3}}},
     r"sets both 'final.retrain_top_k' and its new name 'final.retrain.top_k'"),
    ({"evaluator": {"supernet_steps": 100}}, r"^evaluator.supernet_steps applies to the "
                                             r"oneshot and few_shot evaluators only"),
    ({"evaluator": {"name": "oneshot", "supernet_steps": 0}}, r"^evaluator.supernet_steps"),
])
def test_cheap_evaluation_settings_fail_in_one_line(data, message):
    with pytest.raises(ValueError, match=message) as info:
        ExperimentConfig.from_dict(data)
    assert "\n" not in str(info.value)


def test_oneshot_refuses_per_architecture_training_options():
    with pytest.raises(ValueError, match="oneshot evaluator trains none"):
        ExperimentConfig.from_dict({
            "encoding": {"name": "mlp", "options": {"max_layers": 1, "widths": [8]}},
            "dataset": {"name": "digits", "limit": 200},
            "evaluator": {"name": "oneshot", "inherit": {}}})


# -- the flat keys of before the sections ------------------------------------------------------


def test_the_flat_keys_of_before_the_sections_load_under_their_new_names():
    old = {"train": {"inherit": "parent", "inherit_steps": 40, "rungs": [], "eta": 3},
           "search": {"proxies": ["naswot"], "prefilter": {"proxy": None, "factor": 4},
                      "latency": {"batch_size": 2, "repeats": 30, "warmup": 3}},
           "final": {"retrain_top_k": 2, "retrain_steps": 500, "ensemble": True,
                     "front_size": 4, "distil": True, "distil_temperature": 2.0,
                     "distil_alpha": 0.9, "distil_steps": None, "prune": None,
                     "prune_sparsity": 0.7, "prune_steps": None}}
    with pytest.warns(FutureWarning, match="final.retrain_top_k -> final.retrain.top_k"):
        config = ExperimentConfig.from_dict(old)
    assert config.evaluator.inherit.steps == 40 and config.evaluator.halving is None
    assert config.evaluator.proxies == ("naswot",) and config.evaluator.prefilter is None
    assert config.evaluator.latency.batch_size == 2
    assert config.final.retrain.top_k == 2 and config.final.retrain.steps == 500
    assert config.final.front.size == 4 and config.final.prune is None
    assert config.final.distil.temperature == 2.0
    # The same settings in the sections' layout: the same experiment.
    new = ExperimentConfig.from_dict({
        "evaluator": {"inherit": {"steps": 40}, "proxies": ["naswot"],
                      "latency": {"batch_size": 2}},
        "final": {"retrain": {"top_k": 2, "steps": 500}, "front": {"size": 4},
                  "distil": {"temperature": 2.0}}})
    assert new == config and new.fingerprint() == config.fingerprint()
    assert new.fingerprint(2) == config.fingerprint(2)


def test_old_keys_in_overrides_are_mapped_and_sections_switch_on_by_their_keys():
    config = ExperimentConfig()
    with pytest.warns(FutureWarning):
        mapped = config.with_overrides(["final.retrain_top_k=0", "train.rungs=[50]",
                                        "final.prune=unstructured"])
    assert mapped.final.retrain.top_k == 0 and mapped.evaluator.halving.rungs == (50,)
    assert mapped.final.prune.mode == "unstructured"
    # A step that is off turns on when one of its keys is set, or with true.
    on = config.with_overrides(["final.distil.steps=100"])
    assert on.final.distil.steps == 100 and on.final.distil.temperature == 4.0
    assert config.with_overrides(["final.distil=true"]).final.distil == type(on.final.distil)()
    assert config.with_overrides(["final.distil=true", "final.distil=false"]).final.distil is None


def test_the_fingerprint_derives_from_the_fields():
    """Fields that change no number (display, run directory, plug-ins, compilation cache,
    program bound) are left out; any other change, also a section switched on at its defaults,
    changes it; a value equal to the default experiment's is the default."""
    base = ExperimentConfig()
    for same in (["display.progress=false"], ["run_dir=x"], ["plugins=[p.py]"],
                 ["train.compile_cache_dir=/tmp/c"], ["train.max_programs=4"],
                 ["train.steps=200"]):
        assert base.with_overrides(same).fingerprint() == base.fingerprint(), same
    for changed in (["train.steps=201"], ["final.distil=true"], ["evaluator.inherit={}"],
                    ["final.prune.sparsity=0.5"], ["search.seed=1"]):
        assert base.with_overrides(changed).fingerprint() != base.fingerprint(), changed
