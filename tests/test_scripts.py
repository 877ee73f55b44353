"""The runnable scripts in scripts/: each answers --help and runs on tiny settings."""

import subprocess
import sys
from pathlib import Path

import pytest

from test_data import make_mnist_dir

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def run(script, *args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_help(script):
    r = run(script, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_train_mnist_smoke(tmp_path):
    make_mnist_dir(tmp_path / "mnist", "dash", gz=True, n=300, n_test=60)
    r = run("train_mnist.py", tmp_path / "mnist", "--layers", "16", "--epochs", "2", "--save", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and (tmp_path / "m.npz").exists()


def test_sweep_lr_smoke(tmp_path):
    r = run("sweep_lr.py", "--epochs", "2", "--lrs", "0.01,0.1", "--widths", "8", "--seeds", "1", "--out", "o",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "trials.csv").read_text().count("\n") == 3
    assert (tmp_path / "o" / "accuracy_vs_lr.png").stat().st_size > 1000
