"""The package loads its layers on first use: the report command, the case parser of the
tools and their argument errors run without importing torch (~4 s a process here), and
every public name still resolves to the object its module defines."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import scipy_layers

ROOT = Path(__file__).resolve().parent.parent


def test_the_report_package_and_the_case_parser_import_no_torch():
    code = ("import sys, scipy_layers, scipy_layers.reports, scipy_layers.reports.cli, "
            "scipy_layers.conv_spec\n"
            "heavy = sorted(m for m in ('torch', 'scipy.signal', 'scipy.stats') if m in sys.modules)\n"
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("package, submodules, heavy, module, name", [
    ("scipy_layers", "_workspace.WORKSPACE_LIMIT_BYTES > 0", "torch", "nn", "conv2d"),
    ("scipy_layers.reports", "compare.compare_table and p.build.build_report and "
     "p.errors.ReportError", "matplotlib", "build", "Report")])
def test_submodules_load_on_first_use_and_a_reload_refreshes_the_names(
        package, submodules, heavy, module, name):
    """As when the packages imported them all: ``scipy_layers._workspace`` (the tunables
    of docs/layers.md, "Memory") and ``scipy_layers.reports.compare`` ... after a bare
    import (hostile pass 107: lost with the reports package's lazy names); after
    importlib.reload of a submodule then of the package, no name from the old load."""
    code = (f"import importlib, sys, {package} as p\n"
            f"assert p.{submodules}\n"
            f"assert {heavy!r} not in sys.modules and not hasattr(p, 'nothing')\n"
            f"old = p.{name}\n"
            f"importlib.reload(p.{module}); importlib.reload(p)\n"
            f"assert p.{name} is p.{module}.{name} is not old\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("name", scipy_layers.__all__)
def test_every_public_name_is_its_modules_object(name):
    module = importlib.import_module(f"scipy_layers.{scipy_layers._EXPORTS[name]}")
    assert getattr(scipy_layers, name) is getattr(module, name)
    assert name in dir(scipy_layers)


def test_star_import_binds_every_public_name():
    namespace = {}
    exec("from scipy_layers import *", namespace)
    assert set(scipy_layers.__all__) <= set(namespace)
    assert namespace["conv2d"] is scipy_layers.nn.conv2d


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'scipy_layers' has no attribute 'conv3d'"):
        scipy_layers.conv3d
    with pytest.raises(ImportError, match="conv3d"):
        exec("from scipy_layers import conv3d", {})
