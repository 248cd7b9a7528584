"""A non-editable install works from any directory: configs ship inside the wheel."""

import subprocess
import sys

from conftest import REPO


def test_robust_help_is_fast_and_imports_no_torch():
    code = ("import sys; from robustbench_cli.cli import main; main(['--help']); "
            "assert 'torch' not in sys.modules, 'robust --help imported torch'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "eval" in out.stdout and "aggregate" in out.stdout


def test_wheel_install_runs_from_outside_the_repo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(REPO), "-w", str(tmp_path / "dist")], check=True)
    [wheel] = (tmp_path / "dist").glob("robustbench_cli-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}

    def robust(*args):
        return subprocess.run([sys.executable, "-m", "robustbench_cli.cli", *args], cwd=elsewhere,
                              env=env, capture_output=True, text=True, check=True).stdout

    where = subprocess.run([sys.executable, "-c", "import robustbench_cli; print(robustbench_cli.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), "the test must exercise the installed wheel, not the repo"
    assert "eval" in robust("--help")
    composed = robust("eval", "--cfg", "job", "experiment=mnist_mlp_quick", "attack=pgd_linf")
    assert "name: pgd_linf" in composed and "limit_train: 5000" in composed
    assert "fashion_mnist" in composed
