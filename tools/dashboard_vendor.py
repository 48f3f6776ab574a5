"""The asv dashboard's CDN tags pointed at local copies (tools/offline_dashboard.py's
publish): ``asv publish`` writes pages that load jQuery, flot, bootstrap, stupidtable
and blueimp-md5 from CDNs; offline they redirect to asv's "swallow" error page. The
copies come from ``dashboard/node_modules`` (``npm ci --prefix dashboard``). Standard
library only."""
import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "dashboard" / "node_modules"
NPM_HINT = "run: npm ci --prefix dashboard (in %s)" % ROOT

# CDN URL pattern (as written by asv 0.6.6) -> file under node_modules.
# stupid-table-plugin 1.1.3 stands in for stupidtable 1.0.1 (not on npm);
# flot 0.8.3 on npm ships only unminified files. jquery, bootstrap, md5 and
# orderBars are byte-identical to the CDN files.
VENDOR_FILES = [
    (r"//code\.jquery\.com/jquery-3\.3\.1(\.min)?\.js$", "jquery/dist/jquery.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot(\.min)?\.js$", "flot/jquery.flot.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.time(\.min)?\.js$", "flot/jquery.flot.time.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.selection(\.min)?\.js$", "flot/jquery.flot.selection.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.categories(\.min)?\.js$", "flot/jquery.flot.categories.js"),
    (r"/flot-orderbars@1\.0\.0/js/jquery\.flot\.orderBars\.js$",
     "flot-orderbars/js/jquery.flot.orderBars.js"),
    (r"/stupidtable/1\.0\.1/stupidtable(\.min)?\.js$", "stupid-table-plugin/stupidtable.min.js"),
    (r"/blueimp-md5/2\.19\.0/js/md5(\.min)?\.js$", "blueimp-md5/js/md5.min.js"),
    (r"/bootstrap@3\.1\.1/dist/js/bootstrap(\.min)?\.js$", "bootstrap/dist/js/bootstrap.min.js"),
    (r"/bootstrap@3\.1\.1/dist/css/bootstrap(\.min)?\.css$", "bootstrap/dist/css/bootstrap.min.css"),
]
VENDOR_DIRS = ["bootstrap/dist/fonts"]  # bootstrap.min.css loads ../fonts/*

REMOTE = r"""(?:https?:)?//[^"'\s>]+"""
SCRIPT_RE = re.compile(r"""<script\b[^>]*?\bsrc=["'](%s)["'][^>]*>""" % REMOTE, re.I)
LINK_RE = re.compile(r"""<link\b[^>]*?\bhref=["'](%s)["'][^>]*>""" % REMOTE, re.I)
CDN_ATTRS_RE = re.compile(r"""\s+(?:integrity|crossorigin|referrerpolicy)(?:=(?:"[^"]*"|'[^']*'))?""",
                          re.I)


class DashboardError(Exception):
    """A problem the user can fix; main() prints it and exits with status 1."""


def _remote_tags(html):
    """Yield (tag, url) for each script and stylesheet that ``html`` loads from the network."""
    yield from ((m.group(0), m.group(1)) for m in SCRIPT_RE.finditer(html))
    for m in LINK_RE.finditer(html):
        if re.search(r"""\brel=["']?stylesheet""", m.group(0), re.I):
            yield m.group(0), m.group(1)


def find_remote_refs(html):
    """Return the URLs of scripts and stylesheets that ``html`` still loads from the network."""
    return [url for _, url in _remote_tags(html)]


def rewrite_html(html, vendor_prefix="vendor/"):
    """Point every known CDN tag in ``html`` at ``vendor_prefix + <node_modules path>``.

    Drops integrity/crossorigin/referrerpolicy (some npm files differ from the CDN
    builds) and keeps other attributes, such as asv's onerror. Unknown remote tags
    are left as they are (find_remote_refs lists them). Rewriting twice changes nothing.
    """
    for tag, url in list(_remote_tags(html)):
        rel = next((rel for pattern, rel in VENDOR_FILES if re.search(pattern, url)), None)
        if rel:
            html = html.replace(tag, CDN_ATTRS_RE.sub("", tag.replace(url, vendor_prefix + rel)))
    return html


def check_node_modules(node_modules=NODE_MODULES):
    """Return the paths to vendor; raise DashboardError if node_modules lacks any of them."""
    node_modules = Path(node_modules)
    if not node_modules.is_dir():
        raise DashboardError("%s not found; %s" % (node_modules, NPM_HINT))
    wanted = [rel for _, rel in VENDOR_FILES] + VENDOR_DIRS
    missing = [rel for rel in wanted if not (node_modules / rel).exists()]
    if missing:
        raise DashboardError("%s lacks %s; %s" % (node_modules, ", ".join(missing), NPM_HINT))
    return wanted


def vendorize(html_dir, node_modules=NODE_MODULES):
    """Copy the vendor files into <html_dir>/vendor/ and rewrite every .html file below html_dir.

    Returns the rewritten pages. Raises DashboardError if node_modules is incomplete
    or if any page still loads a remote script or stylesheet (all are listed).
    """
    html_dir, node_modules = Path(html_dir), Path(node_modules)
    if not (html_dir / "index.html").is_file():
        raise DashboardError("%s has no index.html: run asv publish first" % html_dir)
    vendor = html_dir / "vendor"
    for rel in check_node_modules(node_modules):
        (vendor / rel).parent.mkdir(parents=True, exist_ok=True)
        if (node_modules / rel).is_dir():
            shutil.copytree(node_modules / rel, vendor / rel, dirs_exist_ok=True)
        else:
            shutil.copy2(node_modules / rel, vendor / rel)
    changed, leftovers = [], []
    for page in sorted(p for p in html_dir.rglob("*.html") if vendor not in p.parents):
        text = page.read_text(encoding="utf-8")
        new = rewrite_html(text, Path(os.path.relpath(vendor, page.parent)).as_posix() + "/")
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
        leftovers += ["%s: %s" % (page, url) for url in find_remote_refs(new)]
    if leftovers:
        raise DashboardError("pages still load remote scripts/styles (map them in VENDOR_FILES "
                             "and dashboard/package.json):\n  " + "\n  ".join(leftovers))
    return changed
