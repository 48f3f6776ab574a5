"""Tests for tools/offline_dashboard.py: CDN tag rewriting, vendoring and its error messages,
the compare page's installation, and `check` on a site published from real asv results.

Fast (no asv run; asv publish on a small results fixture). The tests that need
dashboard/node_modules (``npm ci --prefix dashboard``) skip with a reason when it is
absent; those that need /usr/bin/chromium skip too, but fail under CI=true.
"""
import importlib.util
import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

from tests._chromium import chromium  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("offline_dashboard",
                                               ROOT / "tools" / "offline_dashboard.py")
od = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(od)

# The <head> of the index.html that asv 0.6.6 publishes (CDN tags verbatim), plus local files.
ASV_HEAD = """<!doctype html>
<html>
  <head>
    <script type="text/javascript">
      function js_load_failure() {
        window.location = "error.html";
      }
    </script>

    <script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-FgpCb/KJQlLNfOu91ta32o/NMZxltwRo8QtmkMRdAu8=" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js" integrity="sha512-eO1AKNIv7KSFl5n81oHCKnYLMi8UV4wWD1TcLYKNTssoECDuiGhoRsQkdiZkl8VUjoms2SeJY7zTSw5noGSqbQ==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js" integrity="sha512-lcRowrkiQvFli9HkuJ2Yr58iEwAtzhFNJ1Galsko4SJDhcZfUub8UxGlMQIsMvARiTqx2pm7g6COxJozihOixA==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js" integrity="sha512-3EUG0t3qfbLaGN3FXO86i+57nvxHOXvIb/xMSKRrCuX/HXdn1bkbqwAeLd6U1PDmuEB2cnKhfM+SGLAVQbyjWQ==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js" integrity="sha512-x4QGSZkQ57pNuICMFFevIhDer5NVB5eJCRmENlCdJukMs8xWFH8OHfzWQVSkl9VQ4+4upPPTkHSAewR6KNMjGA==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script language="javascript" type="text/javascript" src="jquery.flot.axislabels.js"></script>
    <script src="https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js" integrity="sha256-OXNbT0b5b/TgglckAfR8VaJ2ezZv0dHoIeRKjYMKEr8=" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js" integrity="sha512-GM3Ds3dUrgkpKVXc+4RxKbQDoeTemdlzXxn5d/QCOJT6EFdEufu1UTVBpIFDLd6YjIhSThNe+zpo1mwqzNq4GQ==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js" integrity="sha512-8pbzenDolL1l5OPSsoURCx9TEdMFTaeFipASVrMYKhuYtly+k3tcsQYliOEKTmuB1t7yuzAiVo+yd7SJz+ijFQ==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js" integrity="sha256-iY0FoX8s/FEg3c26R6iFw3jAtGbzDwcA5QJ1fiS0A6E=" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css" integrity="sha256-6VA0SGkrc43SYPvX98q/LhHwm2APqX5us6Vuulsafps=" crossorigin="anonymous">
    <link href="asv.css" rel="stylesheet" type="text/css"/>
    <link rel="alternate" type="application/atom+xml" title="Regressions" href="regressions.xml"/>
  </head>
"""
BODY = """  <body>
    <nav id="nav" class="navbar navbar-left navbar-default navbar-fixed-top" role="navigation">
      <ul class="nav navbar-nav navbar-left">
        <li><a href="https://github.com/airspeed-velocity/asv/" class="navbar-link">airspeed velocity</a></li>
	<li id="nav-li-" class="active"><a href="#/">Benchmark grid</a></li>
	<li id="nav-li-regressions"><a href="#/regressions">Regressions</a></li>
      </ul>
    </nav>
  </body>
</html>
"""
COMPARE_CSV = ROOT / "tests" / "fixtures" / "compare" / "compare.csv"
RESULTS = ROOT / "tests" / "fixtures" / "asv_results"
UNKNOWN = '<script src="https://cdn.example.com/other-1.0.js"></script>'
HAS_NODE_MODULES = (od.NODE_MODULES / "jquery").is_dir()
needs_node_modules = pytest.mark.skipif(not HAS_NODE_MODULES,
                                        reason="dashboard/node_modules absent: npm ci --prefix dashboard")


@pytest.fixture
def fake_node_modules(tmp_path):
    """A node_modules holding a stub for every file and directory the tool vendors."""
    nm = tmp_path / "node_modules"
    for _, rel in od.VENDOR_FILES:
        (nm / rel).parent.mkdir(parents=True, exist_ok=True)
        (nm / rel).write_text("/* %s */" % rel)
    for rel in od.VENDOR_DIRS:
        (nm / rel).mkdir(parents=True, exist_ok=True)
        (nm / rel / "font.woff").write_text("font")
    return nm


def make_site(root, head=ASV_HEAD):
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(head + BODY)
    (root / "index.json").write_text('{"params": {"machine": ["box"]}, "benchmarks": {}}')
    (root / "error.html").write_text("<h1>Can not determine continental origin of swallow.</h1>")
    return root


def test_rewrite_maps_every_asv_cdn_tag():
    out = od.rewrite_html(ASV_HEAD + BODY)
    assert od.find_remote_refs(ASV_HEAD + BODY)  # the input really is remote
    assert od.find_remote_refs(out) == []
    for _, rel in od.VENDOR_FILES:
        assert '"vendor/%s"' % rel in out
    assert "integrity=" not in out and "crossorigin" not in out and "referrerpolicy" not in out
    assert out.count('onerror="js_load_failure()"') == 9
    assert 'src="jquery.flot.axislabels.js"' in out and 'href="asv.css"' in out
    assert 'href="https://github.com/airspeed-velocity/asv/"' in out  # links are not resources


def test_rewrite_is_idempotent_and_uses_prefix():
    once = od.rewrite_html(ASV_HEAD, "../vendor/")
    assert od.rewrite_html(once, "../vendor/") == once
    assert 'src="../vendor/jquery/dist/jquery.min.js"' in once
    assert 'href="../vendor/bootstrap/dist/css/bootstrap.min.css"' in once


def test_find_remote_refs_lists_only_scripts_and_stylesheets():
    html = (UNKNOWN + '<link rel="stylesheet" href="//cdn.example.com/x.css">'
            '<link rel="alternate" href="https://example.com/feed.xml">'
            '<a href="https://example.com/">x</a><script src="local.js"></script>')
    assert od.find_remote_refs(html) == ["https://cdn.example.com/other-1.0.js",
                                         "//cdn.example.com/x.css"]
    assert od.rewrite_html(html) == html  # unknown URLs are left for the caller to report


def test_vendorize_copies_files_and_rewrites_all_pages(tmp_path, fake_node_modules):
    site = make_site(tmp_path / "html")
    make_site(site / "sub")
    changed = od.vendorize(site, fake_node_modules)
    assert sorted(p.relative_to(site).as_posix() for p in changed) == ["index.html", "sub/index.html"]
    for _, rel in od.VENDOR_FILES:
        assert (site / "vendor" / rel).is_file()
    assert (site / "vendor/bootstrap/dist/fonts/font.woff").is_file()
    assert 'src="../vendor/flot/jquery.flot.js"' in (site / "sub/index.html").read_text()
    before = (site / "index.html").read_text()
    assert od.vendorize(site, fake_node_modules) == []  # idempotent
    assert (site / "index.html").read_text() == before


def test_vendorize_without_node_modules_says_run_npm_ci(tmp_path):
    with pytest.raises(od.DashboardError, match=r"run: npm ci --prefix dashboard"):
        od.vendorize(make_site(tmp_path / "html"), tmp_path / "missing")


def test_vendorize_with_incomplete_node_modules_lists_missing(tmp_path, fake_node_modules):
    (fake_node_modules / "blueimp-md5/js/md5.min.js").unlink()
    with pytest.raises(od.DashboardError, match=r"blueimp-md5/js/md5\.min\.js.*npm ci --prefix"):
        od.vendorize(make_site(tmp_path / "html"), fake_node_modules)


def test_vendorize_lists_remaining_remote_references(tmp_path, fake_node_modules):
    site = make_site(tmp_path / "html", ASV_HEAD.replace("</head>", UNKNOWN + "</head>"))
    with pytest.raises(od.DashboardError) as err:
        od.vendorize(site, fake_node_modules)
    assert "index.html: https://cdn.example.com/other-1.0.js" in str(err.value)


def test_vendorize_needs_a_published_site(tmp_path, fake_node_modules):
    with pytest.raises(od.DashboardError, match="run asv publish first"):
        od.vendorize(tmp_path, fake_node_modules)


def test_load_asv_conf_accepts_comments_and_trailing_commas(tmp_path):
    conf = tmp_path / "asv.conf.json"
    conf.write_text('{\n  // comment\n  "version": 1, /* c */\n  "project_url": "http://x//y",\n'
                    '  "html_dir": "out/html",\n}\n')
    assert od.load_asv_conf(conf)["project_url"] == "http://x//y"
    assert od.html_dir_from(str(conf)) == Path("out/html")
    assert od.html_dir_from(str(conf), "given") == Path("given")
    with pytest.raises(od.DashboardError, match="not found"):
        od.html_dir_from(str(tmp_path / "nope.json"))


def test_a_config_without_html_dir_publishes_where_asv_does(tmp_path):
    # (mutation pass 115: asv's default is "html" beside the config; .asv/html is only
    # for serve and check without any config file)
    conf = tmp_path / "asv.conf.json"
    conf.write_text('{"version": 1, "results_dir": ".asv/results"}')
    assert od.html_dir_from(str(conf)) == Path("html")


def test_also_branch_reads_paths_from_the_configs_folder_and_lists_a_branch_once(
        tmp_path, monkeypatch):
    """--config project/asv.conf.json, run from its parent: the copy's paths are the config
    folder's, not the working directory's; a branch the config lists already is listed
    once (mutation pass 115)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "asv.conf.json").write_text('{"version": 1, "repo": "..", "branches": ["main"], '
                                           '"results_dir": "r", "env_dir": "e"}')
    (tmp_path / "copy").mkdir()
    monkeypatch.chdir(tmp_path)
    copy = od.with_branches("project/asv.conf.json", ["main", "feature"], tmp_path / "copy")
    conf = json.loads(copy.read_text())
    assert conf["branches"] == ["main", "feature"]
    assert conf["repo"] == str(tmp_path.resolve())
    assert (conf["results_dir"], conf["env_dir"]) == (str((project / "r").resolve()),
                                                      str((project / "e").resolve()))


def test_publish_fails_before_running_asv_without_node_modules(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = od.main(["publish", "--node-modules", str(tmp_path / "nm"), "--asv", str(tmp_path / "no-asv")])
    assert rc == 1
    assert "npm ci --prefix dashboard" in capsys.readouterr().err


def test_publish_passes_arguments_to_asv_then_vendorizes(tmp_path, monkeypatch, fake_node_modules):
    """A stand-in asv records its arguments and writes a site with the real CDN tags."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.conf.json").write_text('{"version": 1, "html_dir": "site", // comment\n}')
    make_site(tmp_path / "template")
    fake_asv = tmp_path / "fake-asv"
    fake_asv.write_text('#!/bin/sh\necho "$@" > args.txt\nrm -rf site && cp -r template site\n')
    fake_asv.chmod(fake_asv.stat().st_mode | stat.S_IEXEC)
    argv = ["publish", "--asv", str(fake_asv), "--node-modules", str(fake_node_modules),
            "--config", "my.conf.json", "HEAD~1..HEAD"]
    assert od.main(argv) == 0
    assert (tmp_path / "args.txt").read_text().split() == ["publish", "--config", "my.conf.json",
                                                            "HEAD~1..HEAD"]
    assert od.find_remote_refs((tmp_path / "site/index.html").read_text()) == []
    assert od.main(argv) == 0  # idempotent
    index = (tmp_path / "site/index.html").read_text()
    assert index.count('href="compare.html"') == 1  # the compare page, linked once
    assert (tmp_path / "site/compare.html").is_file()
    assert json.loads((tmp_path / "site/compare.json").read_text())["rows"] == []  # no compare.csv here


def test_publish_also_branch_hands_asv_a_config_listing_it(tmp_path, monkeypatch, fake_node_modules):
    """asv plots only the config's branches; the copy lists one more, its paths made absolute
    (asv reads them relative to the config's directory, a temporary one here)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "asv.conf.json").write_text('{"version": 1, "repo": ".", "branches": ["main"], '
                                            '"results_dir": "r", "html_dir": "site"}')
    make_site(tmp_path / "template")
    fake_asv = tmp_path / "fake-asv"
    fake_asv.write_text('#!/bin/sh\ncp "$3" used.conf.json\nrm -rf site && cp -r template site\n')
    fake_asv.chmod(fake_asv.stat().st_mode | stat.S_IEXEC)
    assert od.main(["publish", "--asv", str(fake_asv), "--node-modules", str(fake_node_modules),
                    "--also-branch", "feature", "--compare-csv", str(COMPARE_CSV)]) == 0
    used = json.loads((tmp_path / "used.conf.json").read_text())
    assert used["branches"] == ["main", "feature"]
    assert used["repo"] == str(tmp_path) and used["results_dir"] == str(tmp_path / "r")
    assert len(json.loads((tmp_path / "site/compare.json").read_text())["rows"]) == 12


def test_graph_fragment_uses_asv_url_format():
    index = {"params": {"machine": ["box"]}, "benchmarks": {
        "a.track_x": {"params": [], "param_names": []},
        "b.Time.time_f": {"params": [["'float64'", "'float32'"], ["8"]], "param_names": ["dtype", "n"]}}}
    assert od.graph_fragment(index) == (
        "b.Time.time_f", "#b.Time.time_f?machine=box&p-dtype=%27float64%27&p-n=8")


def test_serve_and_check_need_a_published_site(tmp_path, capsys):
    assert od.main(["serve", "--html-dir", str(tmp_path)]) == 1
    assert od.main(["check", "--html-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("publish` first") == 2


def test_check_without_chromium_says_how_to_install(tmp_path, capsys):
    site = make_site(tmp_path / "html", "<html>")
    assert od.main(["check", "--html-dir", str(site), "--chromium", str(tmp_path / "none")]) == 1
    assert "apt-get install -y chromium chromium-driver" in capsys.readouterr().err


def test_installed_asv_template_is_fully_mapped():
    spec = importlib.util.find_spec("asv")
    if spec is None or spec.origin is None:
        pytest.skip("asv is not installed in this Python")
    for page in (Path(spec.origin).parent / "www").glob("*.html"):
        assert od.find_remote_refs(od.rewrite_html(page.read_text(encoding="utf-8"))) == [], page


@needs_node_modules
def test_real_node_modules_has_every_vendored_file():
    assert od.check_node_modules()


@needs_node_modules
def test_vendored_libraries_load_in_chromium(tmp_path, chromium):
    """The vendored jQuery/flot/plugins/bootstrap/md5 load and flot draws, without any network."""
    script = ('<div id="g" style="width:400px;height:200px"></div><script>'
              '$.plot($("#g"), [[[0, 1], [1, 2]]]); document.body.setAttribute("data-libs", '
              '[typeof $.fn.stupidtable, typeof md5, typeof $.fn.tooltip, typeof $.plot].join());'
              '</script>')
    site = make_site(tmp_path / "html", ASV_HEAD + "<body>" + script + "</body></html>")
    od.vendorize(site)
    server = od.start_server(site)
    try:
        url = "http://127.0.0.1:%d/index.html" % server.server_port
        dom = od.run_chromium(chromium, url, "--dump-dom")
    finally:
        server.shutdown()
    assert od.SWALLOW not in dom
    assert 'data-libs="function,function,function,function"' in dom
    assert 'class="flot-base"' in dom


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A site published by the real asv from the results fixture, compare page included."""
    if not HAS_NODE_MODULES:
        pytest.skip("dashboard/node_modules absent: npm ci --prefix dashboard")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(RESULTS, tmp_path / "results")
    conf = {"version": 1, "project": "scipy-layers", "repo": str(ROOT), "branches": ["main"],
            "dvcs": "git", "environment_type": "virtualenv", "results_dir": str(tmp_path / "results"),
            "html_dir": str(tmp_path / "html")}
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    sibling = Path(sys.executable).parent / "asv"
    asv = ["--asv", str(sibling)] if sibling.exists() else []
    assert od.main(["publish", *asv, "--compare-csv", str(COMPARE_CSV)]) == 0
    return tmp_path


def test_check_renders_grid_graph_and_compare_page(published, chromium, capsys):
    assert od.main(["check", "--chromium", chromium, "--out", str(published / "out")]) == 0
    assert "the compare page shows 12 case(s)" in capsys.readouterr().out
    assert (published / "out" / "compare.png").stat().st_size > 0


def test_check_fails_when_the_compare_page_does_not_render(published, chromium, capsys):
    (published / "html" / "compare.js").write_text("syntax error here(")
    assert od.main(["check", "--chromium", chromium, "--out", str(published / "out")]) == 1
    assert "compare: the page did not render" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "abc", "80.5", ""])
def test_serve_refuses_a_port_that_is_no_port_in_one_line(port, monkeypatch, capsys):
    # --port 99999 or -1 ended in an OverflowError traceback from the socket's bind
    served = []
    monkeypatch.setattr(od, "cmd_serve", served.append)
    with pytest.raises(SystemExit) as stopped:
        od.main(["serve", "--port", port])
    assert stopped.value.code == 2 and served == []
    err = capsys.readouterr().err.strip().splitlines()
    assert "error: argument --port:" in err[-1] and "0 to 65535" in err[-1], err
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("port", ["0", "8080", "65535"])
def test_serve_takes_every_port_number(port, monkeypatch):
    served = []
    monkeypatch.setattr(od, "cmd_serve", served.append)
    assert od.main(["serve", "--port", port]) == 0
    assert served[0].port == int(port)
