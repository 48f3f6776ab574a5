"""Reports from asv results: a tidy table of every result, ratios to the native twin,
gradient verdicts, two commits compared, a markdown summary and plots.

pandas and matplotlib are needed here only (``pip install scipy-layers[report]``); the
layers themselves never import this subpackage. Files and columns: reports/README.md.
"""
from .build import Report, build_report
from .compare import DEFAULT_THRESHOLD
from .errors import ReportError, ResultsError
from .reader import read_results

__all__ = ["DEFAULT_THRESHOLD", "Report", "ReportError", "ResultsError", "build_report",
           "read_results"]
