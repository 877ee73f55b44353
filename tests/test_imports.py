"""The package's layers: no import cycle between fastbp's modules, none from a higher layer."""

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "import_graph.py")


def test_the_import_graph_has_no_cycle_and_goes_down_the_layers():
    out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "no cycle, no import from a higher layer" in out.stdout


def test_a_cycle_or_an_upward_import_is_found(tmp_path, monkeypatch):
    # The checker itself: a copy of its graph code run on a made-up package with both faults.
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pkg = tmp_path / "fastbp"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "network.py").write_text("from .engine import kernels\n")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "engine" / "kernels.py").write_text("from ..network import x\n")  # up, and a cycle
    monkeypatch.setattr(mod, "ROOT", str(pkg))
    assert mod.main() == 1
