"""Training survives being killed: resume continues epochs and steps; SIGTERM stops cleanly."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import FASHION, ROBUST, ok, robust

from robustbench_cli.checkpoints import read_checkpoint

ARGS = ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_train=4000",
        "dataset.limit_test=200", "dataset.val_fraction=0", "dataset.batch_size=50",
        "trainer.max_epochs=4", "model.hidden=[512,512]"]
STEPS_PER_EPOCH = 4000 // 50


def start(tmp_path, *extra):
    return subprocess.Popen([ROBUST, *ARGS, *extra], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path_glob, tmp_path, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(tmp_path.glob(path_glob))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path_glob} never appeared")


@pytest.mark.slow  # make test-all: trains twice (~30 s); resume=true is also in the fast suite
def test_sigkill_then_resume_in_the_same_run_folder_continues_epochs_and_steps(tmp_path, fashion_root):
    process = start(tmp_path, "hydra.run.dir=run")
    last = wait_for("run/checkpoints/last.ckpt", tmp_path, process)
    time.sleep(0.2)  # let the file be complete (Lightning writes it atomically)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run = tmp_path / "run"
    assert not (run / "metrics.json").exists()
    saved_epoch = read_checkpoint(last)["epoch"]
    out = ok(robust(*ARGS, "hydra.run.dir=run", "resume=true", cwd=tmp_path))
    assert f"resuming {run} from its last checkpoint" in out.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["global_step"] == 4 * STEPS_PER_EPOCH
    assert saved_epoch < 3  # it really was interrupted before the end
    assert metrics["test_accuracy"] > 0.5
    again = robust(*ARGS, "hydra.run.dir=run", "resume=true", cwd=tmp_path)
    assert again.returncode == 2 and "has finished" in again.stderr


@pytest.mark.slow  # make test-all
def test_sigterm_stops_cleanly_and_resume_finds_the_interrupted_run(tmp_path, fashion_root):
    process = start(tmp_path)
    wait_for("outputs/train/*/checkpoints/last.ckpt", tmp_path, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    [last] = tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")
    run = last.parent.parent
    assert f"interrupted; continue with resume=true hydra.run.dir={run}" in stderr
    content = read_checkpoint(last)
    assert content["global_step"] > 0 and "optimizer_states" in content
    out = ok(robust(*ARGS, "resume=true", cwd=tmp_path))  # a new folder: the newest interrupted run
    assert f"resuming {run}" in out.stdout
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


def test_ckpt_path_continues_in_this_runs_folder(tmp_path):
    from helpers import compose

    from robustbench_cli.checkpoints import resume_point

    cfg = compose("train", "ckpt_path=elsewhere/checkpoints/last.ckpt", "resume=true")
    assert resume_point(cfg, tmp_path) == (Path("elsewhere/checkpoints/last.ckpt"), tmp_path)
    assert resume_point(compose("train"), tmp_path) == (None, tmp_path)


def test_resume_with_nothing_to_resume_is_one_line(tmp_path):
    process = robust(*ARGS, "resume=true", cwd=tmp_path)
    assert process.returncode == 2 and "no interrupted" in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # make test-all; a study stage's eval resume is in the fast suite (test_study)
def test_interrupted_eval_sweep_resumes_with_only_the_missing_rows(tmp_path, trained):
    _, metrics, run_dir = trained
    args = ["eval", f"ckpt_path={run_dir / metrics['checkpoint']}", "dataset.limit_test=500",
            "attack=[fgsm,pgd_linf]", "eps=[0.05,0.1,0.2]", "attack.steps=40",
            "attack.early_stop=false", "progress=false"]
    process = subprocess.Popen([ROBUST, *args, "hydra.run.dir=cut"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "cut" / "results.json"
    deadline = time.time() + 120
    while not (results.is_file() and len(json.loads(results.read_text())) >= 4):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(json.loads(results.read_text()))
    assert kept < 13, "the sweep finished before it could be interrupted"
    out = ok(robust(*args, "hydra.run.dir=cut", "resume=true", cwd=tmp_path))
    assert f"{kept} finished row(s) kept" in out.stdout
    ok(robust(*args, "hydra.run.dir=whole", cwd=tmp_path))

    def table(folder):
        rows = json.loads((tmp_path / folder / "results.json").read_text())
        return [(r["attack"], r["eps"], r["accuracy"], r["correct"], r["n"]) for r in rows]

    # 3 attacks (fgsm_pred added) x 3 eps + 1 sanity check (PGD) + 3 worst-case rows
    assert table("cut") == table("whole") and len(table("whole")) == 13


def test_a_resumed_row_is_kept_only_for_the_same_attack_parameters(trained):
    from helpers import eval_view

    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.runner import evaluate

    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]

    def run(steps, finished=None):
        target, view = eval_view(ckpt, "attack=pgd_linf", f"attack.steps={steps}", limit_test=100)
        done = {}
        rows = evaluate(view.model, target.test_set, view.specs, [0.1], progress=False,
                        device="cpu", finished=finished,
                        on_row=lambda f: done.update({view.specs[0].key(f.row["eps"]): f}))
        return rows, done

    rows, done = run(2)
    again, _ = run(2, finished=done)
    assert again == rows  # the same parameters: kept (a rerun would have taken other seconds)
    with pytest.raises(UserError, match=r"ran with other attack parameters \(steps=2 -> 5\)"):
        run(5, finished=done)
