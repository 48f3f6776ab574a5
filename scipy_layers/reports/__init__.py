"""Reports from asv results: a tidy table of every result, ratios to the native twin,
gradient verdicts, two commits compared, a markdown summary and plots.

pandas and matplotlib are needed here only (``pip install scipy-layers[report]``); the
layers themselves never import this subpackage. Files and columns: reports/README.md.

The names below load on first use, so that the command's start (``start.main``) imports
nothing that can fail before it can say so with status 2.
"""
import importlib as _importlib

# Each public name -> the module that defines it.
_EXPORTS = {
    "DEFAULT_THRESHOLD": "compare", "Report": "build", "ReportError": "errors",
    "ResultsError": "errors", "build_report": "build", "read_results": "reader",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:  # (a submodule: `from scipy_layers.reports import stats` imports it)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
