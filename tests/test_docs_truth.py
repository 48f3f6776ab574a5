"""What the documentation names exists (pass 154): every path, every `module.name` of the
project, every mutant id, every `make` target and variable and every tool's option that
the docs write in code. Files and functions were renamed and moved over the sessions;
a doc that still names the old one fails here. (Links and anchors: tests/test_docs_links.py;
the report's columns: tests/test_reports_docs.py.) No import of the package: the names
are read from the sources' syntax trees, so the whole check takes about a second."""
import ast
import functools
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The docs that describe the code as it is now; docs/performance.md is a log of sessions,
# whose names were true of their day, so only its paths are held to today's tree.
CURRENT = ["README.md", "docs/layers.md", "docs/comparing.md", "docs/results.md",
           "reports/README.md"]
ALL = CURRENT + ["docs/performance.md"] + sorted(
    str(p.relative_to(ROOT)) for p in ROOT.glob("reports/*/README.md"))
GENERATED = {"reports/latest", "dashboard/node_modules"}  # (made by make bench / npm ci)
NOT_MUTANTS = {"p0", "q25", "q75", "rfft2"}  # (a name, quartile columns, torch's rfft2)
# Names that read as a project module's but are not: torch's nn.Sequential, and the
# `params.machine` field of asv's results files.
NOT_PROJECT = {"nn.Sequential", "params.machine"}
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", flags=re.S | re.M)
MODULE_DIRS = ["scipy_layers", "scipy_layers/reports", "tools", "benchmarks"]


def code_units(text: str) -> list[str]:
    """Each inline code span and each line of a fenced block."""
    spans = re.findall(r"`([^`\n]+)`", FENCED.sub("", text))
    return spans + [line for block in FENCED.findall(text) for line in block.splitlines()]


@functools.lru_cache(maxsize=None)
def defined(path: Path) -> frozenset:
    """The names a module defines at its top level (functions, classes, assignments,
    imports; a class's own as Class.name), and for a package its lazy exports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names, body = set(), list(tree.body)
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):  # (top level still: PRIVATE = ...)
            body += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                     *(s for h in getattr(node, "handlers", []) for s in h.body)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            for sub in getattr(node, "body", []) if isinstance(node, ast.ClassDef) else []:
                targets = (sub.targets if isinstance(sub, ast.Assign) else
                           [sub.target] if isinstance(sub, ast.AnnAssign) else [])
                names.update(f"{node.name}.{t.id}" for t in targets if isinstance(t, ast.Name))
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{sub.name}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets)):
                names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    if path.name == "__init__.py":
        names.update(p.stem for p in path.parent.glob("*.py"))
        names.update(p.name for p in path.parent.iterdir() if (p / "__init__.py").exists())
    return frozenset(names)


def module_file(dotted: str) -> Path | None:
    """scipy_layers.x.y, or a module's bare name (_kept, gate, floor_layers), -> its file."""
    parts = dotted.split(".")
    candidates = [ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")]
    if len(parts) == 1:
        candidates += [ROOT / d / f"{dotted}.py" for d in MODULE_DIRS]
    return next((c for c in candidates if c.is_file()), None)


def unresolved_name(reference: str) -> str | None:
    """Why `a.b.c` (a project module, then names in it) does not resolve; None where it
    does or where it names no project module (torch.fft, np.errstate, ...)."""
    reference = re.sub(r"\(\)$", "", reference)
    if reference in NOT_PROJECT:
        return None
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", reference) or re.search(
            r"\.(py|md|json|csv|txt|toml|sh|png|html)$", reference):  # (a file: missing_files)
        return None
    parts = reference.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is None:
            continue
        rest = parts[cut:]
        if rest[0] in defined(path) or ".".join(rest[:2]) in defined(path):
            return None
        return f"{reference}: {path.relative_to(ROOT)} defines no {rest[0]}"
    return None


def named_paths(text: str) -> set[str]:
    """Repository paths written in a doc (code or prose): tools/x.py, tests/, reports/m/..."""
    found = re.findall(r"(?<![\w./-])((?:scipy_layers|tools|tests|benchmarks|dashboard|docs|"
                       r"reports)/[\w./-]*)", text)
    return {p.rstrip(".,:;") for p in found if "<" not in p}


def missing_path(path: str) -> str | None:
    if path.rstrip("/") in GENERATED or (ROOT / path).exists():
        return None
    module, _, attribute = path.rpartition(".")  # tools/floor_layers.hot_call
    if (ROOT / f"{module}.py").is_file() and attribute in defined(ROOT / f"{module}.py"):
        return None
    return f"{path}: no such file"


# Folders of the checkout that are not the project's: version control, virtual
# environments, asv's (.asv/env holds whole environments, torch's thousands of files),
# caches, npm's. Their file names answered for a doc's stale `utils.py` where they
# existed, and walking them cost seconds (hostile pass 156). .ci/ is the project's.
NOT_THE_PROJECTS = re.compile(r"\.(?!ci$).*|node_modules|__pycache__")


@functools.lru_cache(maxsize=None)
def file_names(root: Path) -> frozenset:
    names = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not NOT_THE_PROJECTS.fullmatch(d)]
        names.update(subfolders, files)
    return frozenset(names)


def missing_files(text: str) -> list[str]:
    """Bare file names in code spans (`_kept.py`, `test_views.py`) no file has."""
    names = file_names(ROOT)
    spans = re.findall(r"`([\w.-]+\.(?:py|sh))`", FENCED.sub("", text))
    return [f"{s}: no such file" for s in sorted(set(spans)) if Path(s).name not in names]


def mutant_ids() -> set[str]:
    sys.path.insert(0, str(ROOT / "tools"))
    import mutation_check
    return {m.id.split(":", 1)[1] for table in mutation_check.TABLES
            for m in mutation_check.load_table(table)}


def unknown_mutants(text: str, ids: set[str]) -> list[str]:
    # (hostile passes' ids: `pow152`, `doc154a`, and one letter before the pass number,
    # `x153a`, `a156b`, which the form once missed: a typo of them passed; pass 156)
    spans = set(re.findall(r"`([A-Za-z]{1,4}\d{1,3}|[a-z]{1,6}1\d\d[a-z]?)`", text))
    for first, last in re.findall(r"`([A-Za-z]+\d+)`-`([A-Za-z]+\d+)`", text):  # `om1`-`om3`
        prefix, start = re.fullmatch(r"([A-Za-z]+)(\d+)", first).groups()
        spans |= {f"{prefix}{i}" for i in range(int(start), int(last[len(prefix):]) + 1)}
    return sorted(s for s in spans - NOT_MUTANTS if s not in ids)


def makefile_names() -> tuple[set[str], set[str]]:
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", text, flags=re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[:?]?=", text, flags=re.M))
    variables |= set(re.search(r"USER_VARIABLES := ([^\n]*(?:\\\n[^\n]*)*)", text)[1]
                     .replace("\\", " ").split())
    return targets, variables


# Variables a make command line may set that the Makefile does not read: the suite's grid
# switch (benchmarks/common.py) and pip's index, both read from the environment below it.
ENVIRONMENT = {"SCIPY_LAYERS_BENCH_FULL", "PIP_EXTRA_INDEX_URL"}


def unknown_make(text: str) -> list[str]:
    targets, variables = makefile_names()
    bad = []
    for unit in code_units(text):
        for before, target, after in re.findall(r"(^|[\w=]\s+|&&\s*)make ([a-z][\w-]*)([^#;&|]*)",
                                               unit.split("#")[0]):
            if target not in targets:
                bad.append(f"make {target}: no such target ({unit.strip()})")
            for name in re.findall(r"\b([A-Z][A-Z0-9_]+)=", before + " " + after):
                if name not in variables | ENVIRONMENT:
                    bad.append(f"{name}=: the Makefile reads no such variable ({unit.strip()})")
    return bad


def tool_options(tool: str) -> set[str]:
    source = (ROOT / "tools" / f"{tool}.py" if tool != "report" else
              ROOT / "scipy_layers" / "reports" / "cli.py").read_text()
    return set(re.findall(r"""add_argument\(\s*(?:["']-\w["'],\s*)?["'](--[\w-]+)["']""", source))


def unknown_options(text: str) -> list[str]:
    bad = []
    for unit in code_units(text):
        unit = unit.split(" #")[0]
        for tool, rest in re.findall(r"(?:tools/(\w+)\.py|scipy-layers-report|-m scipy_layers"
                                     r"\.reports)([^|;&]*)", unit):
            tool = tool or "report"
            if not (ROOT / "tools" / f"{tool}.py").exists() and tool != "report":
                continue  # (a missing tool is missing_path's)
            have = tool_options(tool)
            bad += [f"{tool}: no option {o} ({unit.strip()})"
                    for o in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest) if o not in have]
    return bad


def _text(doc: str) -> str:
    return (ROOT / doc).read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", ALL)
def test_every_path_a_doc_names_exists(doc):
    text = _text(doc)
    assert sorted(filter(None, map(missing_path, named_paths(text)))) + missing_files(text) == []


@pytest.mark.parametrize("doc", CURRENT)
def test_every_project_name_a_doc_writes_in_code_is_defined(doc):
    assert sorted(filter(None, map(unresolved_name, set(code_units(_text(doc)))))) == []


def test_every_mutant_id_the_docs_name_is_in_a_table():
    ids = mutant_ids()
    assert {doc: unknown_mutants(_text(doc), ids) for doc in ALL} == {doc: [] for doc in ALL}


@pytest.mark.parametrize("doc", ALL)
def test_every_make_target_and_variable_a_doc_names_exists(doc):
    assert unknown_make(_text(doc)) == []


@pytest.mark.parametrize("doc", ALL)
def test_every_option_a_doc_gives_a_tool_is_the_tools(doc):
    assert unknown_options(_text(doc)) == []


def test_the_checks_catch_what_they_are_for():
    """A broken reference of each kind is reported (the checks are not vacuous)."""
    broken = ("See `tools/compare.py` and tests/test_gone.py, `rounds.py`, `nowhere.py`; "
              "`scipy_layers._kept.WORKSPACE_LIMIT`, `gate.no_such_function`, "
              "`scipy_layers.NoSuchLayer`; mutants `cr1`, `zz9`, `om1`-`om4`, `x153a`, `x153q`; `make benchh`, "
              "`make targets TARGETZ_ARGS=--floors`; `tools/targets.py --floor`, "
              "`scipy-layers-report --treshold 5%`, `tools/floor_layers.hot_call`, "
              "`tools/floor_layers.cold_call`.\n```bash\nmake gate BASE=main  # ok\n```\n")
    assert sorted(filter(None, map(missing_path, named_paths(broken)))) == [
        "tests/test_gone.py: no such file", "tools/compare.py: no such file",
        "tools/floor_layers.cold_call: no such file"]
    assert missing_files(broken) == ["nowhere.py: no such file"]
    assert sorted(filter(None, map(unresolved_name, code_units(broken)))) == [
        "gate.no_such_function: scipy_layers/reports/gate.py defines no no_such_function",
        "scipy_layers.NoSuchLayer: scipy_layers/__init__.py defines no NoSuchLayer",
        "scipy_layers._kept.WORKSPACE_LIMIT: scipy_layers/_kept.py defines no WORKSPACE_LIMIT"]
    assert unknown_mutants(broken, mutant_ids()) == ["om4", "x153q", "zz9"]
    assert [line.split(":")[0] for line in unknown_make(broken)] == [
        "make benchh", "TARGETZ_ARGS="]
    assert [line.split(" (")[0] for line in unknown_options(broken)] == [
        "targets: no option --floor", "report: no option --treshold"]


def test_file_names_are_the_projects(tmp_path, monkeypatch):
    """A name only asv's environments, a virtual environment or npm's folder hold (torch's
    utils.py) is no file of the project's; .ci/'s are."""
    for path in (".asv/env/abc/lib/torch/utils.py", ".venv2/lib/conv.py",
                 "dashboard/node_modules/x/build.sh", ".ci/run/check.sh", "tools/real.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert missing_files("`utils.py`, `conv.py`, `build.sh`, `check.sh`, `real.py`") == [
        "build.sh: no such file", "conv.py: no such file", "utils.py: no such file"]
