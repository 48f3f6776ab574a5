"""A results row's parameters: asv's repr() values read back, a parameter that lists
one value twice refused, the row-major grid of a row's values expanded, and the names
of benchmarks.json put on values stored in another order."""
from __future__ import annotations

import ast
import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ResultsError


@lru_cache(maxsize=4096)
def parse_param_value(text: str) -> str:
    """asv stores parameter values as repr() strings: "'256x256'" -> "256x256"."""
    try:
        return str(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError):
        return text


def check_distinct_values(path: Path, name: str, names: tuple[str, ...],
                          values: tuple[tuple[str, ...], ...]) -> None:
    """Refuse a parameter that lists one value twice (as the same repr() or as two that
    read the same, 1 and '1'). asv then times that case twice, and the report has no
    rule for which figure counts (keeping one would hide the other, a mean would be a
    figure no run measured) and every table keyed on the case would pair them up many
    to many; the fix belongs in the benchmark's params, so it is named."""
    for parameter, choices in zip(names, values):
        seen = {}
        for choice in choices:
            value = parse_param_value(choice)
            if value in seen:
                first = seen[value]
                raise ResultsError(path, f"benchmark {name!r}: parameter {parameter!r} lists "
                                         f"{first} twice ({first} and {choice}): list each "
                                         "value once in the benchmark's params and run it again")
            seen[value] = choice


def expand_grid(names: tuple[str, ...], values: tuple[tuple[str, ...], ...]):
    """Columns of the row-major product of ``values`` (the last parameter varies
    fastest, as in asv's itertools.product)."""
    lengths = [len(v) for v in values]
    total = int(np.prod(lengths)) if lengths else 1
    columns, inner = {}, total
    for name, choices in zip(names, values):
        inner //= len(choices)
        parsed = np.array([parse_param_value(str(v)) for v in choices], dtype=object)
        columns[name] = np.tile(np.repeat(parsed, inner), total // (inner * len(choices)))
    return total, columns


MAX_REORDERED = 7  # parameters: orders tried (7! = 5,040) to name a reordered benchmark's


def names_in_order(names: tuple, declared_params, params: list) -> tuple:
    """benchmarks.json's parameter ``names`` for a results row's ``params``, position by
    position. asv stores no names in results files and a benchmark keeps its ``version``
    when its parameters are reordered, so a file written before the reorder holds its
    values in the old order (hostile pass 150: an older commit's sizes read as dtypes,
    size 'float32', and every case of the comparison as missing). Where each position's
    values meet the values benchmarks.json lists under its name, the names stand; where
    not, the one order of the names in which every position meets its name's values
    names them, if it meets more of the row's values than the names' own order does
    (else the names stand: some values replaced, overlapping another's); several such
    orders: generic names (param1, ...), which nothing is matched by; none (a
    parameter's values all replaced since): the names stand."""
    n = len(params)
    if (not isinstance(declared_params, list) or len(declared_params) != n or n > MAX_REORDERED
            or not all(isinstance(p, list) for p in declared_params)):
        return names
    listed = [{str(v) for v in p} for p in declared_params]
    meets = [[bool(listed[j].intersection(map(str, p))) for j in range(n)] for p in params]
    if all(meets[i][i] for i in range(n)):
        return names
    fitting = [order for order in itertools.permutations(range(n))
               if all(meets[i][order[i]] for i in range(n))]
    # An order that meets fewer of the row's values than the names' own does is no
    # reorder: a parameter's values replaced since, where some overlap another's
    # (batch 1, 2, 4 and channels 4, 16, now 2, 8), fitted only swapped, and a file
    # never reordered was read with the two swapped (hostile pass 152).
    found = [{str(v) for v in p} for p in params]
    if fitting and (sum(len(found[i] & listed[i]) for i in range(n))
                    >= max(sum(len(found[i] & listed[o[i]]) for i in range(n)) for o in fitting)):
        return names
    if len(fitting) == 1:
        return tuple(names[j] for j in fitting[0])
    return generic_names(n) if fitting else names


def generic_names(n: int) -> tuple:
    """The names a results row's ``n`` parameters get where their real names are not
    known: param1, param2, ... (nothing is matched by them, and they say nothing of the
    row's threads)."""
    return tuple(f"param{i + 1}" for i in range(n))
