"""Reports from asv results: a tidy table of every result, ratios to the native twin,
gradient verdicts, two commits compared, a markdown summary and plots.

pandas and matplotlib are needed here only (``pip install scipy-layers[report]``); the
layers themselves never import this subpackage. Files and columns: reports/README.md.

The names below load on first use, so that the command's start (``start.main``) imports
nothing that can fail before it can say so with status 2.
"""
from .._lazy_names import lazy_names

# Each public name -> the module that defines it.
_EXPORTS = {
    "DEFAULT_THRESHOLD": "compare", "Report": "build", "ReportError": "errors",
    "ResultsError": "errors", "build_report": "build", "read_results": "reader",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals())
