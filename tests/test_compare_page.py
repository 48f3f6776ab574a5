"""tools/compare_page.py and dashboard/compare.*: the compare page's data from a compare.csv
fixture (columns read by name), links to asv's graph pages, the gradient flags, the native
control, the navigation link, and the page itself rendered in headless Chromium."""
import csv
import importlib.util
import json
import re
import shutil
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests._chromium import chromium  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import compare_page  # noqa: E402
import offline_dashboard as od  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "compare" / "compare.csv"
ASV_WWW = Path(importlib.util.find_spec("asv").origin).parent / "www"
MACHINE = "amd-epyc-f25m1-avx2-2cpu"


def param(*values):
    return [repr(v) for v in values]


INDEX = {"params": {"machine": [MACHINE], "branch": ["main"]}, "benchmarks": {
    "bench_conv2d.Conv2d.time_forward_backward": {
        "param_names": ["implementation", "size", "kernel", "dtype", "device"],
        "params": [param("native", "scipy"), param("16x16", "127x127"), param("3x3", "15x15"),
                   param("float32", "float64"), param("cpu", "cuda")]},
    "bench_conv2d.Conv2dGradients.track_max_rel_error": {
        "param_names": ["implementation", "size", "kernel", "dtype", "quantity"],
        "params": [param("scipy"), param("127x127"), param("3x3"), param("float32"),
                   param("output", "input", "filter", "bias")]},
}}


def fake_info(commit):
    return {"hash": commit, "short": commit[:7], "date": "2026-12-01T10:00:00+00:00",
            "subject": f"subject of {commit[:7]}"}


def rows():
    return compare_page.read_rows(FIXTURE)


def data():
    return compare_page.build_data(rows(), INDEX, str(FIXTURE), fake_info)


def by_case(built, implementation, measurement, **params):
    return next(r for r in built["rows"] if r["implementation"] == implementation
                and r["measurement"] == measurement and all(r[k] == v for k, v in params.items()))


def test_missing_columns_are_named_with_what_the_file_has(tmp_path):
    old = tmp_path / "compare.csv"
    old.write_text("layer,benchmark,implementation,measurement,commit_a,commit_b,ratio,changed\n")
    with pytest.raises(compare_page.ComparePageError,
                       match=r"lacks column\(s\) verdict; it has: layer, benchmark, .*changed"):
        compare_page.read_rows(old)


def test_columns_are_read_by_name_whatever_their_order_or_number(tmp_path):
    original = rows()
    header = list(reversed(list(original[0]))) + ["a_new_column"]
    shuffled = tmp_path / "compare.csv"
    with open(shuffled, "w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows({**r, "a_new_column": "x"} for r in original)
    again = compare_page.build_data(compare_page.read_rows(shuffled), INDEX, "", fake_info)
    first = data()
    for new, old in zip(again["rows"], first["rows"]):
        assert {k: v for k, v in new.items() if k != "a_new_column"} == old
    assert again["control"] == first["control"]


def test_graph_links_use_asvs_hash_format_with_parameter_selections():
    link = by_case(data(), "scipy", "forward+backward", size="127x127")["_graph"]
    page, _, fragment = link.partition("#")
    name, _, query = fragment.partition("?")
    assert (page, name) == ("index.html", "bench_conv2d.Conv2d.time_forward_backward")
    # asv.js parse_hash_string: split on & and =, decodeURIComponent each part
    pairs = [tuple(urllib.parse.unquote(p) for p in part.split("=")) for part in query.split("&")]
    assert pairs == [("machine", MACHINE), ("p-implementation", "'scipy'"), ("p-size", "'127x127'"),
                     ("p-kernel", "'3x3'"), ("p-dtype", "'float32'"), ("p-device", "'cpu'")]


def test_graph_link_lists_every_branch_when_there_are_several():
    index = {**INDEX, "params": {"machine": [MACHINE], "branch": ["main", "feature"]}}
    row = by_case(data(), "scipy", "forward+backward", size="127x127")
    assert "branch=main&branch=feature&p-implementation" in compare_page.graph_link(row, index)


def test_graph_links_encode_a_space_as_asvs_decodeuricomponent_reads_it():
    # (mutation pass 110: urlencode's default quote_plus writes '+', which asv.js keeps)
    index = {"params": {"machine": ["a box"]}, "benchmarks": {
        "b.C.time_x": {"param_names": ["kernel"], "params": [["'3 x 3'"]]}}}
    row = {"benchmark": "b.C.time_x", "machine": "a box", "kernel": "3 x 3"}
    assert compare_page.graph_link(row, index) == \
        "index.html#b.C.time_x?machine=a%20box&p-kernel=%273%20x%203%27"


def test_the_case_label_spells_out_the_threads():
    built = data()
    assert by_case(built, "scipy", "forward+backward", size="127x127")["_case"] == \
        "127x127 3x3 float32 cpu, 1 thread"
    assert by_case(built, "native", "forward+backward", threads="all")["_case"] == \
        "1024x1024 3x3 float32, all threads"


def test_cases_the_site_lacks_get_no_link():
    assert by_case(data(), "native", "forward", size="16x16")["_graph"] is None  # FFTAbs not in INDEX


def test_a_gradient_regression_is_flagged_beside_the_speed_of_its_case():
    built = data()
    timing = by_case(built, "scipy", "forward+backward", size="127x127", kernel="3x3", dtype="float32")
    assert timing["_flagged"] and timing["_gradients"] == "max rel error of input: 1.2e-07 -> 0.031"
    gradient = by_case(built, "scipy", "max rel error", quantity="input")
    assert gradient["_flagged"] and gradient["_gradients"] == ""  # (its own values say it)
    assert not by_case(built, "scipy", "max rel error", quantity="output")["_flagged"]
    assert not by_case(built, "native", "forward+backward", size="127x127")["_flagged"]
    assert sum(r["_flagged"] for r in built["rows"]) == 2


@pytest.mark.parametrize("column, other", [("machine", "other-box"), ("env", "other-env")])
def test_a_gradient_regression_flags_only_the_timings_of_its_own_machine_and_environment(column, other):
    # The same cases again on another machine (or in another asv environment), with
    # gradients unchanged there: the regression of the fixture's machine is not theirs.
    theirs = [{**r, column: other, "gradient_regression": "False"} for r in rows()]
    built = compare_page.build_data(rows() + theirs, INDEX, "", fake_info)
    case = dict(size="127x127", kernel="3x3", dtype="float32")
    own, their = (next(r for r in built["rows"] if r[column] == where and r["implementation"] == "scipy"
                       and r["measurement"] == "forward+backward"
                       and all(r[k] == v for k, v in case.items()))
                  for where in (rows()[0][column], other))
    assert own["_flagged"] and own["_gradients"] == "max rel error of input: 1.2e-07 -> 0.031"
    assert not their["_flagged"] and their["_gradients"] == ""
    assert sum(r["_flagged"] for r in built["rows"]) == 2  # the fixture's own two, as alone


def test_gradient_notes_match_rows_of_a_compare_csv_without_machine_or_env():
    bare = [{k: v for k, v in r.items() if k not in ("machine", "env")} for r in rows()]
    built = compare_page.build_data(bare, INDEX, "", fake_info)
    assert sum(r["_flagged"] for r in built["rows"]) == 2


def test_native_control_counts_native_timings_called_changed():
    # native timings with a verdict: 127x127 unchanged, 16x16 slower, 1024x1024 unchanged;
    # the 'environment changed' native row is no verdict of the test
    assert data()["control"] == {"changed": 1, "total": 3}


def test_the_native_control_counts_timings_only():
    # a native memory figure called slower is no timing of the A/A control
    memory = {**next(r for r in rows() if r["unit"] == "bytes"), "implementation": "native",
              "verdict": "slower"}
    assert compare_page.native_control(rows() + [memory]) == {"changed": 1, "total": 3}


def test_a_gradient_note_names_the_quantity_once():
    flagged = next(r for r in rows() if compare_page.truthy(r["gradient_regression"]))
    named = {**flagged, "measurement": f"max rel error of {flagged['quantity']}"}
    assert list(compare_page.gradient_notes([named]).values()) == [
        ["max rel error of input: 1.2e-07 -> 0.031"]]


def test_commits_and_environment_warning():
    built = data()
    assert [(p["a"]["short"], p["b"]["short"]) for p in built["commits"]] == [("021b875", "4c67561")]
    assert built["env_differs"] is True


def test_commit_info_from_git():
    info = compare_page.commit_info("4c6756149a5339491c23d0e8fd442f91e08b00a5")
    assert info["short"].startswith("4c67561") and info["subject"].startswith("threadpoolctl")
    assert compare_page.commit_info("f" * 40)["subject"] == "(not in this repository)"


def test_a_commit_that_reads_as_a_git_option_is_never_given_to_git(tmp_path):
    """compare.csv is a file users copy and edit (a CI artifact): a commit_a of
    '--output=FILE' went to `git log` as its option and publish overwrote FILE with the
    log of HEAD (hostile pass 140). Only a hash is asked of git."""
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes\n")
    for commit in (f"--output={victim}", "-p", "HEAD", "main~1"):
        info = compare_page.commit_info(commit)
        assert info["subject"] == "(not in this repository)" and info["hash"] == commit
    assert victim.read_text() == "the user's notes\n"
    text = FIXTURE.read_text().replace("021b87553d963bcbd4a1e39e4cec9a911590016c",
                                       f"--output={victim}")
    edited = tmp_path / "compare.csv"
    edited.write_text(text)
    root = tmp_path / "html"
    root.mkdir()
    shutil.copy(ASV_WWW / "index.html", root / "index.html")
    (root / "index.json").write_text(json.dumps(INDEX))
    built = compare_page.install(root, edited)  # (git's own commit_info)
    assert victim.read_text() == "the user's notes\n"
    assert built["commits"][0]["a"]["subject"] == "(not in this repository)"


@pytest.mark.parametrize("edit", ["short", "long"])
def test_a_row_with_another_number_of_fields_is_the_pages_error_not_a_traceback(tmp_path, edit):
    """A row cut short (a truncated copy) read its missing fields as None and build_data
    sorted None against the commits: TypeError out of offline_dashboard publish (hostile
    pass 140). Such a file is shown as the page's error, as one lacking a column is."""
    lines = FIXTURE.read_text().splitlines()
    bad = "conv2d,timings" if edit == "short" else lines[2] + ",extra"
    broken = tmp_path / "compare.csv"
    broken.write_text("\n".join([*lines[:3], bad, *lines[3:]]) + "\n")
    with pytest.raises(compare_page.ComparePageError, match=r"line 4 has (2|27) fields; the header names 26"):
        compare_page.read_rows(broken)
    built = make_site(tmp_path / "html", broken)
    assert built["rows"] == [] and "line 4 has" in built["error"]


@pytest.mark.parametrize("edit", ["quote", "latin-1"])
def test_a_compare_csv_the_csv_module_cannot_read_is_the_pages_error_not_a_traceback(
        tmp_path, edit):
    """A stray quote opening a field of a compare.csv past 128 KiB (a real run's is) made
    the rest of the file one field: csv.Error 'field larger than field limit', a
    traceback out of offline_dashboard publish; a file saved as Latin-1 stopped publish
    with UnicodeDecodeError, the compare page not installed (hostile pass 140). Both are
    the page's error, as a missing column is."""
    lines = FIXTURE.read_text().splitlines(keepends=True)
    lines = lines[:1] + lines[1:] * (140_000 // len("".join(lines)) + 1)
    broken = tmp_path / "compare.csv"
    if edit == "quote":
        lines[1] = lines[1].replace(",native,", ',"native,', 1)
        broken.write_text("".join(lines))
        expected = "field larger than field limit"
    else:
        broken.write_bytes("".join(lines).replace("native", "nativ\u00e9", 1).encode("latin-1"))
        expected = "not UTF-8"
    with pytest.raises(compare_page.ComparePageError, match=f"{re.escape(str(broken))}: .*{expected}"):
        compare_page.read_rows(broken)
    built = make_site(tmp_path / "html", broken)
    assert built["rows"] == [] and expected in built["error"]
    assert 'href="compare.html"' in (tmp_path / "html/index.html").read_text()


def test_nav_link_goes_after_asvs_regressions_item_once():
    html = (ASV_WWW / "index.html").read_text()
    patched = compare_page.add_nav_link(html)
    assert patched.count('href="compare.html"') == 1
    assert patched.index('id="nav-li-regressions"') < patched.index('id="nav-li-compare"') \
        < patched.index('id="nav-li-graphdisplay"')
    assert compare_page.add_nav_link(patched) == patched
    with pytest.raises(compare_page.ComparePageError, match="no Regressions item"):
        compare_page.add_nav_link("<html></html>")


def make_site(root, csv_path=FIXTURE):
    """A published-like site: asv's index.html, a small index.json, the compare page."""
    root.mkdir()
    shutil.copy(ASV_WWW / "index.html", root / "index.html")
    (root / "index.json").write_text(json.dumps(INDEX))
    return compare_page.install(root, csv_path, info=fake_info)


def test_install_copies_the_page_writes_its_data_and_links_it(tmp_path):
    built = make_site(tmp_path / "html")
    for name in compare_page.PAGE_FILES + (compare_page.DATA_FILE,):
        assert (tmp_path / "html" / name).is_file(), name
    written = json.loads((tmp_path / "html/compare.json").read_text())
    assert len(written["rows"]) == 12 and written == json.loads(json.dumps(built))
    assert written["error"] == ""
    assert 'href="compare.html"' in (tmp_path / "html/index.html").read_text()


def test_install_without_or_with_an_unreadable_csv_publishes_an_empty_page(tmp_path):
    assert make_site(tmp_path / "a", tmp_path / "absent.csv")["rows"] == []
    old = tmp_path / "old.csv"
    old.write_text("layer,benchmark\n")
    built = make_site(tmp_path / "b", old)
    assert built["rows"] == [] and "lacks column(s)" in built["error"]


def render(chromium, site, query=""):
    server = od.start_server(site)
    try:
        return od.run_chromium(chromium, "http://127.0.0.1:%d/compare.html%s" % (server.server_port, query),
                               "--dump-dom")
    finally:
        server.shutdown()


def body_rows(dom):
    return [line for line in dom.split("<tr ") if "data-row=" in line]


def test_the_page_renders_every_row_offline(chromium, tmp_path):
    make_site(tmp_path / "html")
    dom = render(chromium, tmp_path / "html")
    assert od.compare_page_failures(dom, 12) == []
    assert "021b875" in dom and "subject of 4c67561" in dom
    assert "Native control (A/A): 1 of 3 native timings" in dom
    assert "1 gradient regression(s)." in dom
    assert dom.count('class="verdict-slower flagged"') == 1  # the slower case with its broken gradient
    assert "max rel error of input: 1.2e-07 -&gt; 0.031" in dom
    assert 'href="index.html#bench_conv2d.Conv2d.time_forward_backward?machine=' in dom


def test_the_page_filters_and_sorts_from_its_query(chromium, tmp_path):
    make_site(tmp_path / "html")
    dom = render(chromium, tmp_path / "html", "?layer=conv2d&sort=B/A%20[CI]&dir=desc")
    shown = body_rows(dom)
    assert 'data-rendered="7"' in dom and len(shown) == 7
    ratios = [float(re.findall(r"<td[^>]*>(.*?)</td>", r)[6].split()[0]) for r in shown]  # B/A
    assert ratios == sorted(ratios, reverse=True)
    dom = render(chromium, tmp_path / "html", "?verdict=slower")
    assert len(body_rows(dom)) == 2 and all("verdict-slower" in r for r in body_rows(dom))


def test_the_check_fails_when_the_page_does_not_render(chromium, tmp_path):
    make_site(tmp_path / "html")
    (tmp_path / "html/compare.js").write_text("this is not javascript(")
    dom = render(chromium, tmp_path / "html")
    assert od.compare_page_failures(dom, 12) == [
        "compare: the page did not render (compare.js did not run to the end)"]


def test_the_check_fails_on_a_page_without_rows(chromium, tmp_path):
    make_site(tmp_path / "html", tmp_path / "absent.csv")
    dom = render(chromium, tmp_path / "html")
    assert "No comparison published yet" in dom
    assert od.compare_page_failures(dom, 0)[0].startswith("compare: compare.json has no rows")


def test_the_check_counts_the_rows_shown_not_only_the_count_the_page_claims():
    """A page that says it rendered 3 rows but shows 2 fails the check (the suite passed
    with only the page's own data-rendered count compared; no browser needed here)."""
    assert od.compare_page_failures('<body data-rendered="3">' + '<tr data-row="1">' * 2, 3) == [
        "compare: the table shows 2 row(s), compare.json has 3"]
    assert od.compare_page_failures('<body data-rendered="3">' + '<tr data-row="1">' * 3, 3) == []
