/* The compare page: renders compare.json, which tools/compare_page.py writes from the
   report's compare.csv. Row fields are read by name through data.columns (role -> CSV
   column), so new CSV columns never break the page. Plain DOM, no library: it works
   offline like the rest of the site. After rendering, <body data-rendered="N"> says how
   many rows the table shows (offline_dashboard.py check reads it). */
(function () {
  "use strict";

  var C = {};            // role -> column name, from compare.json
  var rows = [];
  var sort = {key: null, dir: 1};
  var FILTER_ROLES = ["layer", "implementation", "measurement", "verdict", "machine"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function get(row, role) { var v = row[C[role] || role]; return v === undefined || v === null ? "" : String(v); }

  function num(text) { var x = parseFloat(text); return isFinite(x) ? x : null; }

  function truthy(text) { return ["true", "1", "yes"].indexOf(String(text).toLowerCase()) >= 0; }

  function sig(x, digits) {
    if (x === null) { return ""; }
    if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) { return x.toExponential(digits - 1); }
    return String(Number(x.toPrecision(digits)));
  }

  function withUnit(text, unit) {
    var x = num(text);
    if (x === null) { return ""; }
    if (unit === "seconds") {
      var scales = [[1, "s"], [1e-3, "ms"], [1e-6, "\u00b5s"], [1e-9, "ns"]];
      for (var i = 0; i < scales.length; i++) {
        if (Math.abs(x) >= scales[i][0] || i === scales.length - 1) { return sig(x / scales[i][0], 3) + " " + scales[i][1]; }
      }
    }
    if (unit === "bytes") {
      return Math.abs(x) >= 1048576 ? sig(x / 1048576, 3) + " MiB" : sig(x / 1024, 3) + " KiB";
    }
    return sig(x, 3) + (unit && unit !== "unitless" ? " " + unit : "");
  }

  // Table columns: title, cell text, sort key, class.
  var COLUMNS = [
    {title: "layer", text: function (r) { return get(r, "layer"); }},
    {title: "implementation", text: function (r) { return get(r, "implementation"); }},
    {title: "measurement", text: function (r) { return get(r, "measurement"); }},
    {title: "case", text: function (r) { return r._case || ""; }},
    {title: "A", cls: "num", text: function (r) { return withUnit(get(r, "value_a"), get(r, "unit")); },
     key: function (r) { return num(get(r, "value_a")); }},
    {title: "B", cls: "num", text: function (r) { return withUnit(get(r, "value_b"), get(r, "unit")); },
     key: function (r) { return num(get(r, "value_b")); }},
    {title: "B/A [CI]", cls: "num", key: function (r) { return num(get(r, "ratio")); },
     text: function (r) {
       var ratio = num(get(r, "ratio")), lo = num(get(r, "ci_low")), hi = num(get(r, "ci_high"));
       if (ratio === null) { return ""; }
       return sig(ratio, 3) + (lo !== null && hi !== null ? " [" + sig(lo, 3) + ", " + sig(hi, 3) + "]" : "");
     }},
    {title: "q", cls: "num", text: function (r) { return sig(num(get(r, "q_value")), 2); },
     key: function (r) { return num(get(r, "q_value")); }},
    {title: "verdict", cls: "verdict", text: function (r) { return get(r, "verdict"); }},
    {title: "gradients", cls: "gradients", text: function (r) {
      return r._gradients || (truthy(get(r, "gradient_regression")) ? "regression" : "");
    }},
    {title: "env", text: function (r) { return truthy(get(r, "env_differs")) ? "differs" : ""; }},
    {title: "graph", text: function () { return ""; }, link: true}
  ];

  function status(text, isError) {
    var node = document.getElementById("status");
    node.textContent = text;
    node.className = isError ? "warning" : "";
  }

  function renderCommits(data) {
    var box = document.getElementById("commits");
    data.commits.forEach(function (pair) {
      var dl = el("dl");
      [["A", pair.a], ["B", pair.b]].forEach(function (side) {
        dl.appendChild(el("dt", {text: side[0] + " (" + (side[0] === "A" ? "base" : "HEAD") + ")"}));
        dl.appendChild(el("dd", {}, [el("code", {text: side[1].short, title: side[1].hash}),
          el("span", {text: (side[1].date || "").slice(0, 10) + "  " + side[1].subject})]));
      });
      box.appendChild(dl);
    });
    if (data.env_differs) {
      box.appendChild(el("p", {"class": "warning", text: "The environments of A and B differ " +
        "(env column): a change there may come from the machine, not the code."}));
    }
  }

  function renderSummary(data) {
    var box = document.getElementById("summary");
    var counts = {};
    rows.forEach(function (r) { var v = get(r, "verdict") || "(none)"; counts[v] = (counts[v] || 0) + 1; });
    Object.keys(counts).sort().forEach(function (v) {
      box.appendChild(el("span", {"class": "count", text: v + ": " + counts[v]}));
    });
    var flagged = rows.filter(function (r) { return truthy(get(r, "gradient_regression")); }).length;
    box.appendChild(el("p", {"class": flagged ? "warning" : "", id: "gradient-count",
      text: flagged + " gradient regression(s)."}));
    var c = data.control;
    box.appendChild(el("p", {"class": "control", id: "native-control",
      text: "Native control (A/A): " + c.changed + " of " + c.total + " native timings were called " +
        "faster or slower. Native torch code is the same in both commits, so each is a false " +
        "alarm of this run" + (c.total ? " (" + sig(100 * c.changed / c.total, 2) + "%)." : ".")}));
  }

  function renderFilters() {
    var form = document.getElementById("filters");
    FILTER_ROLES.forEach(function (role) {
      var values = {};
      rows.forEach(function (r) { values[get(r, role)] = true; });
      var names = Object.keys(values).filter(function (v) { return v !== ""; }).sort();
      if (names.length < 2 && role === "machine") { return; }
      var select = el("select", {id: "filter-" + role, "data-role": role}, [el("option", {value: "", text: "all"})]);
      names.forEach(function (v) { select.appendChild(el("option", {value: v, text: v})); });
      select.addEventListener("change", renderBody);
      form.appendChild(el("label", {text: role}, [select]));
    });
    var box = el("input", {type: "checkbox", id: "filter-flagged"});
    box.addEventListener("change", renderBody);
    form.appendChild(el("label", {text: "gradient regressions only "}, [box]));
  }

  function renderHead() {
    var tr = el("tr");
    COLUMNS.forEach(function (col, i) {
      var th = el("th", {text: col.title, "data-col": String(i)});
      if (!col.link) {
        th.addEventListener("click", function () {
          sort.dir = sort.key === i ? -sort.dir : 1;
          sort.key = i;
          renderBody();
        });
      }
      tr.appendChild(th);
    });
    document.querySelector("#compare-table thead").appendChild(tr);
  }

  function visibleRows() {
    var chosen = {};
    FILTER_ROLES.forEach(function (role) {
      var select = document.getElementById("filter-" + role);
      if (select && select.value) { chosen[role] = select.value; }
    });
    var flaggedOnly = document.getElementById("filter-flagged").checked;
    var shown = rows.filter(function (r) {
      return Object.keys(chosen).every(function (role) { return get(r, role) === chosen[role]; }) &&
        (!flaggedOnly || r._flagged);
    });
    if (sort.key !== null) {
      var col = COLUMNS[sort.key];
      var key = col.key || col.text;
      shown.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === y) { return 0; }
        if (x === null || x === "") { return 1; }   // blanks last either way
        if (y === null || y === "") { return -1; }
        return (x < y ? -1 : 1) * sort.dir;
      });
    }
    return shown;
  }

  function renderBody() {
    var tbody = document.querySelector("#compare-table tbody");
    var shown = visibleRows();
    tbody.textContent = "";
    shown.forEach(function (r) {
      var cls = "verdict-" + get(r, "verdict").replace(/\s+/g, "-") + (r._flagged ? " flagged" : "");
      var tr = el("tr", {"class": cls, "data-row": ""});
      COLUMNS.forEach(function (col) {
        var td = el("td", {"class": col.cls || ""});
        if (col.link) {
          if (r._graph) { td.appendChild(el("a", {href: r._graph, text: "graph"})); }
        } else {
          td.textContent = col.text(r);
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    document.querySelectorAll("#compare-table th").forEach(function (th) {
      var i = Number(th.getAttribute("data-col"));
      th.className = i === sort.key ? (sort.dir > 0 ? "sorted-asc" : "sorted-desc") : "";
    });
    status(shown.length + " of " + rows.length + " cases shown (click a heading to sort).");
    document.body.setAttribute("data-rendered", String(shown.length));
  }

  function render(data) {
    C = data.columns || {};
    rows = data.rows || [];
    if (!rows.length) {
      status(data.error ? "The comparison could not be shown: " + data.error
                        : "No comparison published yet: run `make compare` (compare.json has no rows).", true);
      document.getElementById("compare-table").style.display = "none";
      document.body.setAttribute("data-rendered", "0");
      return;
    }
    renderCommits(data);
    renderSummary(data);
    renderFilters();
    applyQuery(new URLSearchParams(window.location.search));
    renderHead();
    renderBody();
  }

  // compare.html?verdict=slower&layer=conv2d&flagged=1&sort=B/A%20[CI]&dir=desc opens
  // with those filters and that order (links from a CI log or the README).
  function applyQuery(params) {
    FILTER_ROLES.forEach(function (role) {
      var select = document.getElementById("filter-" + role);
      if (select && params.get(role) !== null) { select.value = params.get(role); }
    });
    document.getElementById("filter-flagged").checked = params.get("flagged") === "1";
    var column = COLUMNS.map(function (c) { return c.title; }).indexOf(params.get("sort"));
    if (column >= 0) {
      sort.key = column;
      sort.dir = params.get("dir") === "desc" ? -1 : 1;
    }
  }

  fetch("compare.json")
    .then(function (response) {
      if (!response.ok) { throw new Error("compare.json: HTTP " + response.status); }
      return response.json();
    })
    .then(render)
    .catch(function (error) {
      status("Could not show the comparison: " + error.message, true);
      document.body.setAttribute("data-rendered", "0");
    });
}());
