"""Knowledge distillation of the final ensemble: the loss, the final-stage option and
``evonas distil``."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from evonas.cli import main
from evonas.experiment import Experiment, ExperimentConfig
from evonas.report import write_report
from evonas.store import load_model
from evonas.train import cross_entropy, distillation_loss
from tests.experiment_configs import tiny_config, tiny_dict

DISTIL = {"retrain": {"top_k": 2, "steps": 60}, "distil": {"temperature": 2.0, "alpha": 0.7}}


def test_the_loss_is_hintons_and_alpha_zero_is_cross_entropy():
    logits = jax.random.normal(jax.random.key(0), (8, 5))
    teacher = 3 * jax.random.normal(jax.random.key(1), (8, 5))
    labels = jnp.arange(8) % 5
    t, alpha = 3.0, 0.6
    soft = jax.nn.softmax(teacher / t)
    kl = jnp.mean(jnp.sum(soft * (jnp.log(soft) - jax.nn.log_softmax(logits / t)), axis=-1))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    want = (1 - alpha) * ce + alpha * t * t * kl
    assert distillation_loss(logits, labels, teacher, t, alpha) == pytest.approx(float(want),
                                                                                 rel=1e-5)
    assert distillation_loss(logits, labels, teacher, t, 0.0) == pytest.approx(
        float(cross_entropy(logits, labels)), rel=1e-6)
    # A student equal to the teacher has no soft-target loss left: only the labels' part.
    assert distillation_loss(teacher, labels, teacher, t, 1.0) == pytest.approx(0.0, abs=1e-5)


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("distil") / "run"
    Experiment(tiny_config(final=DISTIL), run_dir=run_dir).run()
    return run_dir


def test_the_final_stage_distils_the_ensemble_into_the_best(distilled_run):
    final = json.loads((distilled_run / "best" / "final.json").read_text())
    summary = json.loads((distilled_run / "distilled" / "distil.json").read_text())
    assert final["distillation"] == summary
    ids = [m["id"] for m in final["models"]]
    assert summary["teacher"] == {"members": ids, "test_acc": final["ensemble_test_acc"]}
    student = summary["student"]
    assert student["id"] == ids[0] and student["alone_test_acc"] == final["best_test_acc"]
    assert (summary["temperature"], summary["alpha"], summary["steps"]) == (2.0, 0.7, 60)
    # The distilled student is an ordinary exported model of the best's architecture, and the
    # score recorded is what it scores.
    module, variables, info = load_model(distilled_run / "distilled")
    best_module, _, best_info = load_model(distilled_run)
    assert info["genome"] == best_info["genome"] and module == best_module
    assert info["test_acc"] == student["distilled_test_acc"]
    # The other member is kept for `evonas distil`, with its parameters.
    _, _, member = load_model(distilled_run / "ensemble" / "2")
    assert member["history_id"] == ids[1] and member["rank"] == 2


def test_the_distilled_student_differs_from_the_student_alone_only_by_the_loss(distilled_run):
    """alpha = 0 is plain cross-entropy: the same key, init and batches give the best's
    parameters exactly."""
    from evonas.experiment.config import DistilConfig
    from evonas.experiment.finish import Finish, scorer_for
    from evonas.experiment.finish.distil import distil_student, teacher_logits

    config = tiny_config(final=DISTIL)
    finish = Finish(config, distilled_run, [], *scorer_for(config))
    dataset, encoding = finish.dataset, finish.encoding
    _, best_vars, info = load_model(distilled_run)
    module, _ = encoding.build(np.asarray(info["genome"], np.int32))
    x = np.concatenate([dataset.x_train, dataset.x_val])
    teacher = teacher_logits([(module, best_vars)], x, 256)
    row = {"genome": info["genome"], "id": info["history_id"]}
    key = finish.retrain_key(row, jax.random.fold_in(finish.key, 0))  # the best's own key
    params, _ = distil_student(finish, key, teacher, row, 60, DistilConfig(2.0, 0.0))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(best_vars), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_the_final_stage_student_starts_from_the_best_retrainings_key(distilled_run):
    """The exported student is what the best's own key (initialisation and batches) gives with
    the kept ensemble as teacher: only the loss differs from the best's retraining."""
    from evonas.experiment.config import DistilConfig
    from evonas.experiment.finish import Finish, scorer_for
    from evonas.experiment.finish.distil import distil_student, member_dirs, teacher_logits

    config = tiny_config(final=DISTIL)
    finish = Finish(config, distilled_run, [], *scorer_for(config))
    dataset = finish.dataset
    members = [load_model(d, preprocess=False) for d in member_dirs(distilled_run)]
    x = np.concatenate([dataset.x_train, dataset.x_val])  # standardised, as the run trains
    teacher = teacher_logits([(m, v) for m, v, _ in members], x, 256)
    row = {"genome": members[0][2]["genome"], "id": members[0][2]["history_id"]}
    key = finish.retrain_key(row, jax.random.fold_in(finish.key, 0))  # the best's own key
    params, _ = distil_student(finish, key, teacher, row, 60, DistilConfig(2.0, 0.7))
    _, exported, _ = load_model(distilled_run / "distilled")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(exported), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_the_report_shows_teacher_alone_and_distilled(distilled_run):
    page = write_report(distilled_run)["html"].read_text()
    assert "<h2>Distillation</h2>" in page
    assert "trained alone" in page and "distilled</td>" in page and "teacher: the ensemble" in page


def test_evonas_distil_on_a_finished_run_writes_the_same_kind_of_result(distilled_run, capsys):
    code = main(["distil", str(distilled_run), "--temperature", "4", "--alpha", "0.5",
                 "--steps", "30", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["temperature"], out["alpha"], out["steps"]) == (4.0, 0.5, 30)
    # Other steps than the retraining's: the student is trained alone again with them.
    assert 0.0 <= out["student"]["alone_test_acc"] <= 1.0
    on_disk = json.loads((distilled_run / "distilled" / "distil.json").read_text())
    assert on_disk == out


@pytest.mark.parametrize("argv, message", [
    (["--temperature", "0"], "distillation temperature must be > 0; got 0.0"),
    (["--alpha", "1.5"], "distillation alpha must be a number in [0, 1]; got 1.5"),
    (["--student", "999"], "student=999 is not an evaluated architecture"),
])
def test_bad_distil_arguments_are_one_line(distilled_run, capsys, argv, message):
    before = (distilled_run / "distilled" / "distil.json").read_bytes()
    code = main(["distil", str(distilled_run), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (distilled_run / "distilled" / "distil.json").read_bytes() == before


def test_distilling_without_an_ensemble_is_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="final.distil has no ensemble to distil from "
                       r"\(final.retrain.top_k=1"):
        ExperimentConfig.from_dict(tiny_dict(final={"retrain": {"top_k": 1}, "distil": True}))
    run_dir = tmp_path / "single"
    Experiment(tiny_config(final={"retrain": {"top_k": 1, "steps": 20}}),
               run_dir=run_dir).run()
    code = main(["distil", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "has no ensemble to distil from (1 retrained model" in err
    assert not (run_dir / "distilled").exists()
