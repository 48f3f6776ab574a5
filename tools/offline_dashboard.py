#!/usr/bin/env python3
"""Publish, serve and check the asv dashboard without internet access.

``asv publish`` writes pages that load jQuery, flot, bootstrap, stupidtable and
blueimp-md5 from CDNs; offline they redirect to asv's "swallow" error page.
This tool (standard library only) points those tags at local copies taken from
``dashboard/node_modules`` (set up once with ``npm ci --prefix dashboard``;
tools/dashboard_vendor.py)::

    python tools/offline_dashboard.py publish [asv publish args, e.g. --config X]
    python tools/offline_dashboard.py serve [--port 8080]      # 127.0.0.1 only
    python tools/offline_dashboard.py check [--out DIR]        # headless chromium

publish also installs the compare page (tools/compare_page.py: compare.html beside
asv's pages, from the report's compare.csv, linked from the navigation bar). Run it
from the directory that holds ``asv.conf.json``.
"""
import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_page  # noqa: E402
from dashboard_vendor import (NODE_MODULES, VENDOR_DIRS, VENDOR_FILES,  # noqa: E402,F401
                              DashboardError, check_node_modules, find_remote_refs,
                              rewrite_html, vendorize)
from help_text import description  # (tools/, this script's folder)

CHROMIUM_HINT = "install it with: apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
SWALLOW = "continental origin of swallow"  # text of asv's error.html
DEFAULT_COMPARE_CSV = Path("reports/latest/compare.csv")


def load_asv_conf(path="asv.conf.json"):
    """Read an asv config file, which may hold // and /* */ comments and trailing commas."""
    text = Path(path).read_text(encoding="utf-8")
    text = re.sub(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/',
                  lambda m: m.group(0) if m.group(0)[0] == '"' else "", text, flags=re.S)
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", text))


def html_dir_from(config=None, html_dir=None):
    """The published directory: html_dir if given, else the config's html_dir.

    asv's own default is "html" when the config has no html_dir; with no config
    file at all (serve/check only) .asv/html is assumed.
    """
    if html_dir:
        return Path(html_dir)
    path = Path(config or "asv.conf.json")
    if config and not path.is_file():
        raise DashboardError("config file %s not found" % path)
    return Path(load_asv_conf(path).get("html_dir", "html")) if path.is_file() else Path(".asv/html")


CONFIG_PATHS = ("repo", "results_dir", "html_dir", "env_dir", "benchmark_dir")


def with_branches(config, branches, directory):
    """Write a copy of the asv config that also lists ``branches`` (asv publish plots only
    commits on the configured branches); return its path. asv reads paths relative to
    the config file's directory, so the copy's paths are made absolute."""
    config = Path(config or "asv.conf.json")
    conf = load_asv_conf(config)
    for key in CONFIG_PATHS:
        if key in conf:
            conf[key] = str((config.resolve().parent / conf[key]).resolve())
    conf["branches"] = list(conf.get("branches", [])) + [b for b in branches if b not in conf.get("branches", [])]
    path = Path(directory) / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=1), encoding="utf-8")
    return path


def cmd_publish(args, extra):
    """Run `asv publish EXTRA...`, then vendorize the published directory and install the
    compare page."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--html-dir", "-o")
    known, rest = pre.parse_known_args(extra)
    html_dir = html_dir_from(known.config, known.html_dir)
    check_node_modules(args.node_modules)  # fail before asv runs
    sibling = Path(sys.executable).parent / "asv"
    with tempfile.TemporaryDirectory() as temp:
        config = known.config
        if args.also_branch:
            config = str(with_branches(known.config, args.also_branch, temp))
        cmd = [args.asv or (str(sibling) if sibling.exists() else "asv"), "publish",
               *(["--config", config] if config else []),
               *(["--html-dir", known.html_dir] if known.html_dir else []), *rest]
        print("+", " ".join(cmd), flush=True)
        try:
            if subprocess.call(cmd) != 0:
                raise DashboardError("asv publish failed")
        except FileNotFoundError:
            raise DashboardError("asv not found: install it or pass --asv PATH") from None
    changed = vendorize(html_dir, args.node_modules)
    try:
        data = compare_page.install(html_dir, args.compare_csv)
    except (compare_page.ComparePageError, OSError, ValueError) as exc:
        raise DashboardError("compare page: %s" % exc) from None
    if data["error"]:
        print("warning: the compare page shows no comparison: %s" % data["error"], file=sys.stderr)
    print("vendored %d page(s) in %s; compare page: %d case(s) from %s; serve with: python %s serve"
          % (len(changed), html_dir, len(data["rows"]), data["source"] or "no compare.csv", __file__))


def start_server(html_dir, port=0):
    """Serve html_dir on 127.0.0.1:port (0: a free port) in a daemon thread; return the server."""
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    handler = functools.partial(quiet, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _published_dir(args):
    html_dir = html_dir_from(args.config, args.html_dir)
    if not (html_dir / "index.html").is_file():
        raise DashboardError("%s not found: run `python %s publish` first"
                             % (html_dir / "index.html", __file__))
    return html_dir


def cmd_serve(args):
    """Serve the published site on 127.0.0.1 until interrupted."""
    html_dir = _published_dir(args)
    server = start_server(html_dir, args.port)
    print("serving %s at http://127.0.0.1:%d/ (Ctrl-C to stop)" % (html_dir, server.server_port),
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


def find_chromium(path=None):
    """Return the chromium executable, or raise DashboardError saying how to install it."""
    found = shutil.which(path or "/usr/bin/chromium") or (not path and shutil.which("chromium"))
    if found:
        return found
    raise DashboardError("chromium not found (%s); %s" % (path or "/usr/bin/chromium", CHROMIUM_HINT))


def run_chromium(chromium, url, *flags, timeout=120):
    """Run headless chromium (new empty profile) on url with extra flags; return its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, "--user-data-dir=" + profile, "--window-size=1400,1000",
               "--virtual-time-budget=10000", *flags, url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DashboardError("chromium failed on %s:\n%s" % (url, proc.stderr[-2000:]))
    return proc.stdout


def graph_fragment(index):
    """Return (benchmark, URL fragment) of one graph page, from asv's index.json.

    asv's graph URLs look like ``#<benchmark>?machine=M&p-<param>=<value>``, where
    values are the repr() strings (``p-dtype='float64'``). Picks the first
    parameterised benchmark (else the first) and the first value of each parameter.
    """
    names = sorted(index["benchmarks"])
    if not names:
        raise DashboardError("index.json lists no benchmarks: run asv run first")
    name = next((n for n in names if index["benchmarks"][n].get("params")), names[0])
    bench = index["benchmarks"][name]
    query = [("machine", index["params"]["machine"][0])]
    query += [("p-" + p, v[0]) for p, v in zip(bench.get("param_names", []), bench.get("params", []))]
    return name, "#%s?%s" % (name, urllib.parse.urlencode(query, quote_via=urllib.parse.quote))


def render(chromium, url, out, label):
    """Screenshot and DOM of one page (written to out/<label>.png/.html); return (dom, failures)."""
    png = (Path(out) / (label + ".png")).resolve()
    run_chromium(chromium, url, "--screenshot=%s" % png)
    dom = run_chromium(chromium, url, "--dump-dom")
    (Path(out) / (label + ".html")).write_text(dom, encoding="utf-8")
    print("%s: %s -> %s" % (label, url, png))
    failures = []
    if SWALLOW in dom:
        failures.append("%s: asv's error page (a script failed to load)" % label)
    if not png.is_file() or png.stat().st_size == 0:
        failures.append("%s: no screenshot written" % label)
    return dom, failures


def compare_page_failures(dom, expected_rows, error=""):
    """Why the rendered compare page does not show its table (empty when it does):
    compare.js sets <body data-rendered="N"> and marks every table row data-row."""
    if not expected_rows:
        return ["compare: compare.json has no rows (no comparison published: run make compare, "
                "or pass --no-compare)" + ("; %s" % error if error else "")]
    match = re.search(r'<body[^>]*\bdata-rendered="(\d+)"', dom)
    shown = dom.count("data-row=")
    if not match:
        return ["compare: the page did not render (compare.js did not run to the end)"]
    if int(match.group(1)) != expected_rows or shown != expected_rows:
        return ["compare: the table shows %s row(s), compare.json has %d" % (shown, expected_rows)]
    return []


def cmd_check(args):
    """Render the grid page, one graph page and the compare page in headless chromium;
    check that they show data."""
    html_dir = _published_dir(args)
    chromium = find_chromium(args.chromium)
    remote = [u for p in html_dir.rglob("*.html") for u in find_remote_refs(p.read_text("utf-8"))]
    if remote:
        raise DashboardError("pages still load remote files (use publish): %s" % ", ".join(remote))
    index = json.loads((html_dir / "index.json").read_text("utf-8"))
    name, fragment = graph_fragment(index)
    compare_rows = None
    if not args.no_compare:
        data_file = html_dir / compare_page.DATA_FILE
        if not data_file.is_file():
            raise DashboardError("%s not found: publish with this tool (or pass --no-compare)" % data_file)
        compare_data = json.loads(data_file.read_text("utf-8"))
        compare_rows = len(compare_data["rows"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = start_server(html_dir)
    root = "http://127.0.0.1:%d/" % server.server_port
    failures = []
    try:
        dom, failed = render(chromium, root + "index.html", out, "grid")
        absent = [n for n in index["benchmarks"] if 'href="#%s"' % n not in dom]
        if absent or "benchmark-container" not in dom:
            failed.append("grid: benchmarks not shown: %s" % ", ".join(absent or ["all"]))
        if 'href="compare.html"' not in dom and not args.no_compare:
            failed.append("grid: no link to the compare page in the navigation bar")
        failures += failed
        dom, failed = render(chromium, root + "index.html" + fragment, out, "graph")
        if 'class="flot-base"' not in dom or "No graphs to load" in dom:
            failed.append("graph: no flot plot for %s" % name)
        failures += failed
        if not args.no_compare:
            dom, failed = render(chromium, root + "compare.html", out, "compare")
            failures += failed + compare_page_failures(dom, compare_rows, compare_data.get("error"))
    finally:
        server.shutdown()
    if failures:
        raise DashboardError("dashboard check failed:\n  " + "\n  ".join(failures))
    print("ok: grid shows %d benchmark(s); %s is plotted%s" % (
        len(index["benchmarks"]), name,
        "" if args.no_compare else "; the compare page shows %d case(s)" % compare_rows))


def port_number(text):
    """--port: a TCP port, 0 to 65535 (0: any free one, printed when serving)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a port number (0 to 65535)" % text) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("%d is not a port number (0 to 65535; 0: any free port)"
                                         % port)
    return port


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=description(__doc__))
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", allow_abbrev=False,
                         help="asv publish (other arguments go to it), then use local copies")
    pub.add_argument("--asv", help="asv executable (default: the one beside this python, else PATH)")
    pub.add_argument("--node-modules", default=NODE_MODULES, help="default: %(default)s")
    pub.add_argument("--compare-csv", type=Path, default=DEFAULT_COMPARE_CSV,
                     help="the report's compare.csv for the compare page (default: %(default)s)")
    pub.add_argument("--also-branch", action="append", default=[], metavar="BRANCH",
                     help="plot this branch's commits too (asv plots the config's branches only)")
    serve = sub.add_parser("serve", help="serve the published site on 127.0.0.1")
    serve.add_argument("--port", type=port_number, default=8080,
                       help="0 to 65535, 0 for any free one (default: %(default)s)")
    check = sub.add_parser("check", help="render the site in headless chromium, check it shows data")
    check.add_argument("--out", default=".asv/dashboard-check", help="screenshots go here")
    check.add_argument("--chromium", help="chromium executable (default: /usr/bin/chromium)")
    check.add_argument("--no-compare", action="store_true",
                       help="skip the compare page (a site with no comparison published)")
    for p in (serve, check):
        p.add_argument("--config", help="asv config file (default: asv.conf.json)")
        p.add_argument("--html-dir", help="published directory (default: html_dir of the config)")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "publish":
        parser.error("unrecognized arguments: %s" % " ".join(extra))
    try:
        if args.command == "publish":
            cmd_publish(args, extra)
        else:
            {"serve": cmd_serve, "check": cmd_check}[args.command](args)
    except (DashboardError, subprocess.TimeoutExpired, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
