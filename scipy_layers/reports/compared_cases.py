"""The report's --cases: the cases a comparison ran (make compare writes them), read and
checked against benchmarks.json, and which rows of the results are among them. asv
writes NaN for a skipped case and for every case a run did not select alike, so a NaN is
read as a skip only among the cases a comparison ran (compare.compare_table)."""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pandas as pd

from .errors import ResultsError
from .params import parse_param_value
from .validate import load_json


class ComparedCases(dict):
    """read_compared_cases' answer: {benchmark: [asv's name of each parameter
    combination]}, merged over the kinds, with ``path``, the file (for errors)."""

    def __init__(self, cases: dict[str, list[str]], path: Path | str):
        super().__init__(cases)
        self.path = Path(path)


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error line, cut where it is long."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[:limit] + "..."


@functools.lru_cache(maxsize=1 << 16)
def parse_combination(combo: str) -> tuple[str, ...] | None:
    """asv's name of a parameter combination ("'scipy', '16x16'"; "" for none) -> each
    value as the reader reads asv's (str of the literal); None where it is not a list of
    Python literals separated by commas."""
    try:
        node = ast.parse(f"[{combo}]", mode="eval").body
        if not isinstance(node, ast.List):  # ("1], [2": two lists, not one)
            return None
        return tuple(str(ast.literal_eval(value)) for value in node.elts)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None  # (ValueError also: an int too long for str, a lone surrogate)


def read_compared_cases(path: Path | str) -> ComparedCases:
    """--cases: the cases a comparison ran, as tools/suite_cases.py lists them ({kind:
    {benchmark: [asv's name of each parameter combination, "'scipy', '16x16'"]}}),
    merged over the kinds. A file that lists no combination at all ({}, {"timings":
    {}}) is a ResultsError: every NaN would read as "missing" and hide a case now
    skipped (make compare always lists some). ``check_compared_cases`` checks each
    combination against benchmarks.json."""
    path = Path(path)
    data = load_json(path)
    problem = ResultsError(path, "is not a list of compared cases ({\"timings\": "
                                 "{benchmark: [\"'p1', 'p2'\", ...]}, \"tracks\": {...}}, as "
                                 "tools/suite_cases.py writes)")
    if not isinstance(data, dict):
        raise problem
    cases: dict[str, list[str]] = {}
    for kind in data.values():
        if not isinstance(kind, dict):
            raise problem
        for name, combos in kind.items():
            if not (isinstance(combos, list) and all(isinstance(c, str) for c in combos)):
                raise problem
            cases.setdefault(name, []).extend(combos)
    if not any(cases.values()):
        raise ResultsError(path, "lists no case: read with it, every NaN would be "
                                 "\"missing\" and no case \"now skipped\" (make compare "
                                 "lists the cases it ran; leave --cases out to read every "
                                 "NaN as a skip)")
    return ComparedCases(cases, path)


def check_compared_cases(cases: dict[str, list[str]], benchmarks: dict) -> None:
    """A ResultsError naming the cases file (``cases.path``), the benchmark and the
    combination where ``cases`` cannot be matched with the results: a benchmark that
    benchmarks.json does not hold (misspelt, or listed for another suite), or a
    combination that does not read as Python literals, or whose values are not as many as the benchmark's parameters there, or
    that names a value benchmarks.json's ``params`` do not list for its parameter. Each
    would match no row, and every NaN of the case would read as "missing"."""
    path = getattr(cases, "path", "--cases")
    for name, combos in cases.items():
        if name not in benchmarks:
            raise ResultsError(path, f"benchmark {_shown(name)} is not in benchmarks.json "
                                     "(misspelt, or listed for another suite)")
        names = list(benchmarks[name].get("param_names") or [])
        for combo in combos:
            values = parse_combination(combo)
            if values is None:
                raise ResultsError(path, f"benchmark {_shown(name)}: combination "
                                         f"{_shown(combo)} does not read as Python literals "
                                         "(asv names a combination by its values' repr(), "
                                         "\"'scipy', '16x16'\")")
            if len(values) != len(names):
                raise ResultsError(path, f"benchmark {_shown(name)}: combination "
                                         f"{_shown(combo)} has {len(values)} value(s), and "
                                         f"benchmarks.json names {len(names)} parameter(s)"
                                         + (f" ({', '.join(names)})" if names else ""))
            for name_of, value, choices in zip(names, values, _choices(benchmarks[name], names)):
                if choices is not None and value not in choices:
                    raise ResultsError(path, f"benchmark {_shown(name)}: combination "
                                             f"{_shown(combo)}: {name_of} {_shown(value)} is "
                                             "not among its values in benchmarks.json")


def _choices(info: dict, names: list[str]) -> list[set[str] | None]:
    """Per parameter, the values benchmarks.json's ``params`` lists for it, read as the
    reader reads them; None for each where ``params`` is not asv's lists of repr()s."""
    params = info.get("params")
    if not (isinstance(params, list) and len(params) == len(names) and all(
            isinstance(p, list) and all(isinstance(v, str) for v in p) for p in params)):
        return [None] * len(names)
    return [{parse_param_value(v) for v in p} for p in params]


_GENERIC = re.compile(r"param[0-9]+")


def _named_as_declared(rows: pd.DataFrame, names: list[str]) -> pd.Series:
    """Per row: whether the reader named its parameters by benchmarks.json's ``names``.
    Where the results hold another number of parameters it names them param1, param2,
    ... (reader._Collector.grid): such a row's values cannot be told apart by name."""
    if any(name not in rows for name in names):
        return pd.Series(False, index=rows.index)
    own = pd.Series(True, index=rows.index)
    for name in names:
        own &= rows[name].astype(str) != ""
    for column in rows.columns:
        if _GENERIC.fullmatch(str(column)) and column not in names:
            own &= rows[column].astype(str) == ""
    return own


def in_cases(table: pd.DataFrame, cases: dict[str, list[str]], benchmarks: dict) -> pd.Series:
    """Whether each row's benchmark and parameters are among ``cases`` (checked by
    ``check_compared_cases``). A combination's values are read as the reader reads asv's
    (str of the literal) and matched by benchmarks.json's parameter names. A row whose
    parameters the reader could not name so (its results hold another number of them
    than benchmarks.json names: param1, param2, ...) cannot be matched, by name or by
    position, since a combination holds benchmarks.json's number of values: it counts
    as among the cases, so asv's reading of it stands (a NaN stays a skip)."""
    found = pd.Series(False, index=table.index)
    for name, rows in table[table["benchmark"].isin(list(cases))].groupby("benchmark"):
        wanted = {parse_combination(combo) for combo in cases[name]}
        names = list(benchmarks[name].get("param_names") or [])
        named = _named_as_declared(rows, names)
        keys = (zip(*(rows[p].astype(str) for p in names)) if names and named.any()
                else [()] * len(rows))
        found[rows.index] = [not own or key in wanted for key, own in zip(keys, named)]
    return found
