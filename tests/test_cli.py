"""The `fastbp` command, run as a user runs it: a subprocess, its output and its exit status."""

import re
import shutil
import subprocess
import sys

import pytest

MODULE = [sys.executable, "-m", "fastbp.cli"]


def run(cmd, *args, cwd):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def console_script():
    path = shutil.which("fastbp")
    if path is None:
        pytest.skip("the fastbp console script is not on PATH")
    return [path]


COMMANDS = {"python -m fastbp.cli": lambda: MODULE, "fastbp": console_script}


@pytest.mark.parametrize("command", COMMANDS)
def test_train_three_epochs(tmp_path, command):
    cmd = COMMANDS[command]()
    r = run(cmd, "train", "--epochs", 3, "--out", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    output = r.stdout + r.stderr
    epochs = re.findall(r"^epoch (\d+)\b.*\bloss [0-9.]+", output, flags=re.M)
    assert epochs == ["1", "2", "3"], output
    final = re.search(r"test accuracy ([0-9.]+)", r.stdout)
    assert final, r.stdout
    assert 0.5 < float(final.group(1)) <= 1.0  # three epochs of digits already beat chance (0.1) by far
    assert (tmp_path / "run" / "model.npz").exists()


BAD_OPTIONS = [("python -m fastbp.cli", ["--layers", "0"], "--layers"), ("python -m fastbp.cli", ["--lr", "-1"], "--lr"),
               ("python -m fastbp.cli", ["--lr=-1"], "--lr"), ("python -m fastbp.cli", ["--epochs", "0"], "--epochs"),
               ("fastbp", ["--layers", "0"], "--layers"), ("fastbp", ["--lr", "-1"], "--lr")]


@pytest.mark.parametrize("command, args, option", BAD_OPTIONS)
def test_bad_option_is_a_one_line_error(tmp_path, command, args, option):
    cmd = COMMANDS[command]()
    r = run(cmd, "train", *args, "--out", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error:"), r.stderr
    assert option in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "run").exists()  # nothing was trained or written
