"""Reports from asv results: a tidy table of every result, ratios to the native twin,
gradient verdicts, two commits compared, a markdown summary and plots.

pandas and matplotlib are needed here only (``pip install scipy-layers[report]``); the
layers themselves never import this subpackage. Files and columns: reports/README.md.

The names below load on first use, so that the command's start (``start.main``) imports
nothing that can fail before it can say so with status 2.
"""
import importlib as _importlib
import importlib.util as _importlib_util

# Each public name -> the module that defines it.
_EXPORTS = {
    "DEFAULT_THRESHOLD": "compare", "Report": "build", "ReportError": "errors",
    "ResultsError": "errors", "build_report": "build", "read_results": "reader",
}
__all__ = list(_EXPORTS)
for _name in _EXPORTS:  # (importlib.reload: names cached by an earlier load go stale)
    globals().pop(_name, None)
del _name


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # (found directly from now on)
        return value
    # a submodule, as when this package imported them (scipy_layers.reports.compare after
    # a bare import); never __main__, which runs the command
    if not name.startswith("__") and _importlib_util.find_spec(f"{__name__}.{name}"):
        return _importlib.import_module(f".{name}", __name__)  # (binds itself here)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
