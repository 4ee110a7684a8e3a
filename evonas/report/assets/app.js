/* evonas: the interactive views of a search, for the offline report and the live dashboard.
 *
 * One script for both pages. The page holds its settings as JSON in the script element of type
 * application/json with the id "evonas-config": the report embeds every run's data there (mode
 * "report"); the dashboard names its runs and this script fetches what is new from the
 * dashboard's own JSON routes every second (mode "live").
 *
 * A run directory may come from someone else, so every string from it is data: it reaches the
 * page through textContent, and plotly (which reads a few tags in its labels) gets it with <, >
 * and & written as entities. Nothing here uses innerHTML or builds markup from strings.
 */
(function () {
  "use strict";

  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22"];
  var TABLE_ROWS = 200;          // rows of the architectures' table shown at once
  var GL_POINTS = 5000;          // above this many points a scatter is drawn with WebGL
  var IMPORTANCE_EVERY_MS = 5000; // the dashboard asks for gene importance at most this often

  var config = JSON.parse(document.getElementById("evonas-config").textContent);
  var live = config.mode === "live";
  var runs = [];
  var selected = null;           // {run: index, id: evaluation id}
  var ui = {run: 0, x: "params", objective: 0, gene: null, sort: "best"};
  var plotConfig = {displaylogo: false, responsive: true};

  // -- helpers ---------------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  /* An element with text children (strings become text nodes, never markup). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") { node.className = attrs[k]; }
      else if (k === "on") { Object.keys(attrs.on).forEach(function (e) { node.addEventListener(e, attrs.on[e]); }); }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }

  /* Text for plotly labels: plotly reads <b>, <br>, <a> and entities in them, so <, > and &
   * become entities and show as themselves. */
  function pt(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fmt(value) {
    if (value === null || value === undefined) { return "–"; }
    if (typeof value !== "number") { return String(value); }
    if (!isFinite(value)) { return "–"; }
    var a = Math.abs(value);
    if (a >= 1e9) { return (value / 1e9).toPrecision(3) + "G"; }
    if (a >= 1e6) { return (value / 1e6).toPrecision(3) + "M"; }
    if (a >= 1e4) { return (value / 1e3).toPrecision(3) + "k"; }
    return String(Number(value.toPrecision(4)));
  }

  function color(run) { return PALETTE[run % PALETTE.length]; }

  function estimate(row) {
    if (!row.est) { return "–"; }
    return row.fid ? row.est + ", " + row.fid + " steps" : row.est;
  }

  function geneLabel(run, g, value) {
    var gene = run.genes[g];
    if (gene && gene.labels && value >= 0 && value < gene.labels.length) { return gene.labels[value]; }
    return String(value);
  }

  function geneText(run, row, limit) {
    if (!row.genome) { return "–"; }
    var parts = row.genome.map(function (v, g) {
      var name = run.genes[g] ? run.genes[g].name : "gene_" + g;
      return name + "=" + geneLabel(run, g, v);
    });
    var text = parts.join(", ");
    return limit && text.length > limit ? text.slice(0, limit - 1) + "…" : text;
  }

  function okRows(run) { return run.rows.filter(function (r) { return !r.failed && r.fit !== null; }); }

  /* The runs overlaid in the shared plots: those whose objectives are the shown run's (a run
   * searched for other objectives has nothing to compare on those axes). */
  function overlaid(id) {
    var ref = runs[ui.run] || runs[0];
    var key = function (r) { return r.objectives.map(function (o) { return o.name + (o.maximize ? "+" : "-"); }).join(","); };
    var same = runs.filter(function (r) { return key(r) === key(ref); });
    var left = runs.filter(function (r) { return key(r) !== key(ref); }).map(function (r) { return r.name; });
    var note = $(id + "-note");
    if (note) { note.textContent = left.length ? "Not overlaid (other objectives): " + left.join(", ") + "." : ""; }
    return same;
  }

  function better(run) { return run.objectives[0].maximize ? 1 : -1; }

  function hover(run, row) {
    var lines = [(runs.length > 1 ? run.name + " " : "") + "#" + row.id + " · generation " + row.gen,
                 run.objectives[0].name + " " + fmt(row.fit)];
    run.objectives.slice(1).forEach(function (o, k) { lines.push(o.name + " " + fmt(row.obj[k + 1])); });
    lines.push("params " + fmt(row.params) + " · flops " + fmt(row.flops));
    lines.push(geneText(run, row, 90));
    return lines.map(pt).join("<br>");
  }

  function webgl() {
    try {
      var canvas = document.createElement("canvas");
      return !!(window.WebGLRenderingContext && (canvas.getContext("webgl") || canvas.getContext("experimental-webgl")));
    } catch (e) { return false; }
  }
  var hasWebGL = webgl();

  function message(id, text) {
    var node = $(id);
    if (window.Plotly && node.data) { Plotly.purge(node); }
    clear(node).appendChild(el("p", {"class": "ev-empty"}, [text]));
  }

  function plot(id, traces, layout) {
    var node = $(id);
    if (!node.data) { clear(node); }
    var base = {margin: {l: 60, r: 20, t: 10, b: 50}, hovermode: "closest", uirevision: "keep",
                font: {size: 12}, legend: {orientation: "h", y: -0.2}};
    Plotly.react(node, traces, Object.assign(base, layout), plotConfig);
    if (!node.evonasClick) {
      node.evonasClick = true;
      node.on("plotly_click", function (event) {
        var p = event.points && event.points[0];
        if (p && p.customdata && p.customdata.length === 2) { select(p.customdata[0], p.customdata[1]); }
        else if (p && node.evonasBarClick) { node.evonasBarClick(p); }
      });
    }
  }

  /* A generation axis: one tick per generation while they fit. */
  function generationAxis(generations) {
    var last = Math.max.apply(null, [0].concat(generations));
    return last <= 20 ? {title: {text: "generation"}, dtick: 1} : {title: {text: "generation"}};
  }

  function scatterType(count) { return count > GL_POINTS && hasWebGL ? "scattergl" : "scatter"; }

  // -- the runs' data --------------------------------------------------------------------------

  function addRun(index, data) {
    var run = {index: index, name: data.name || "run " + index, objectives: [], genes: [], rows: [],
               byId: new Map(), children: new Map(), details: {}, front: {ids: [], axes: [], hypervolume: []},
               best: null, generations: [], importance: null, epoch: null, importanceAt: 0,
               importanceTotal: -1};
    update(run, data);
    runs[index] = run;
    return run;
  }

  function update(run, data) {
    ["name", "objectives", "genes", "genes_source", "front", "best", "generations", "progress", "summary", "error"].forEach(function (k) {
      if (data[k] !== undefined) { run[k] = data[k]; }
    });
    if (!run.objectives || !run.objectives.length) { run.objectives = [{name: "fitness", maximize: true}]; }
    if (data.reset) { run.rows = []; run.byId = new Map(); run.children = new Map(); run.details = {}; }
    (data.rows || []).forEach(function (row) {
      if (run.byId.has(row.id)) { return; }
      run.rows.push(row);
      run.byId.set(row.id, row);
      row.parents.forEach(function (p) {
        if (!run.children.has(p)) { run.children.set(p, []); }
        var kids = run.children.get(p);
        if (kids[kids.length - 1] !== row.id) { kids.push(row.id); }  // a cross of a parent with itself
      });
    });
    if (data.details) { Object.keys(data.details).forEach(function (k) { run.details[k] = data.details[k]; }); }
    if (data.importance !== undefined) { run.importance = data.importance; }
    if (data.epoch !== undefined) { run.epoch = data.epoch; }
  }

  // -- views -----------------------------------------------------------------------------------

  function renderRuns() {
    var node = clear($("ev-runs"));
    var head = el("tr", {}, ["run", "generations", "evaluations", "failed", "best", "fitness estimated by", "genes named by"]
      .map(function (h) { return el("th", {}, [h]); }));
    var body = runs.map(function (run) {
      var ok = okRows(run);
      var best = run.best !== null ? run.byId.get(run.best) : null;
      var counts = {};
      run.rows.forEach(function (r) { var k = estimate(r); counts[k] = (counts[k] || 0) + 1; });
      var estimates = Object.keys(counts).sort().map(function (k) { return k + " (" + counts[k] + ")"; }).join("; ");
      var gens = new Set(run.rows.map(function (r) { return r.gen; }));
      var sum = run.summary || {evaluations: run.rows.length, failed: run.rows.length - ok.length, generations: gens.size};
      if (sum.shown !== undefined && sum.shown < sum.evaluations) { estimates += " (of the " + sum.shown + " in this page)"; }
      var source = {space: "the search space", descriptions: "the descriptions", index: "position (the space is unknown here)"};
      var name = [el("span", {"class": "ev-swatch", style: "background:" + color(run.index)}), run.name];
      if (run.error) { name.push(el("div", {"class": "ev-error"}, [run.error])); }
      return el("tr", {}, [
        el("td", {}, name),
        el("td", {"class": "num"}, [sum.generations]), el("td", {"class": "num"}, [sum.evaluations]),
        el("td", {"class": "num"}, [sum.failed]),
        el("td", {}, [best ? run.objectives[0].name + " " + fmt(best.fit) + " (#" + best.id + ")" : "–"]),
        el("td", {}, [estimates || "–"]), el("td", {}, [source[run.genes_source] || "–"])]);
    });
    node.appendChild(el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]));
  }

  function renderRunSelect() {
    var select = $("ev-run");
    var wrap = $("ev-run-wrap");
    if (runs.length < 2) { wrap.hidden = true; return; }
    wrap.hidden = false;
    if (select.options.length !== runs.length) {
      clear(select);
      runs.forEach(function (run) { select.appendChild(el("option", {value: run.index}, [run.name])); });
      select.value = String(ui.run);
    }
  }

  function renderProgress() {
    var traces = [];
    var shown = overlaid("ev-progress");
    shown.forEach(function (run) {
      var sign = better(run);
      var progress = run.progress || [];  // [generation, best, median, worst] over every row
      var gens = progress.map(function (p) { return p[0]; });
      var best = progress.map(function (p) { return p[1]; });
      var median = progress.map(function (p) { return p[2]; });
      var worst = progress.map(function (p) { return p[3]; });
      var soFar = [], top = null;
      best.forEach(function (b) { top = top === null || sign * (b - top) > 0 ? b : top; soFar.push(top); });
      var name = shown.length > 1 ? run.name + ": " : "";
      var c = color(run.index);
      if (shown.length === 1) {
        traces.push({x: gens, y: worst, mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip", type: "scatter"});
        traces.push({x: gens, y: best, mode: "lines", fill: "tonexty", fillcolor: "rgba(31,119,180,0.12)", line: {width: 0},
                     name: "worst to best", hoverinfo: "skip", type: "scatter"});
        traces.push({x: gens, y: worst, mode: "markers+lines", line: {dash: "dot", color: "#888"}, name: "worst", type: "scatter"});
      }
      traces.push({x: gens, y: best, mode: "markers+lines", line: {color: c}, name: pt(name + "best"), type: "scatter"});
      traces.push({x: gens, y: median, mode: "markers+lines", line: {color: c, dash: "dash"}, marker: {symbol: "square"},
                   name: pt(name + "median"), type: "scatter", opacity: 0.7});
      traces.push({x: gens, y: soFar, mode: "lines", line: {color: c, width: 4}, opacity: 0.45,
                   name: pt(name + "best so far"), type: "scatter"});
    });
    if (!shown.some(function (r) { return r.progress && r.progress.length; })) { message("ev-progress", "No successful evaluation yet."); return; }
    var obj = shown[0].objectives[0];
    plot("ev-progress", traces, {height: 340, xaxis: generationAxis(traces.reduce(function (a, t) { return a.concat(t.x); }, [])),
      yaxis: {title: {text: pt(obj.name + (obj.maximize ? "" : " (lower is better)"))}}});
  }

  function axisOptions() {
    var options = [["params", "parameters"], ["flops", "FLOPs"], ["gen", "generation"], ["id", "evaluation order"]];
    var run = runs[ui.run] || runs[0];
    run.objectives.slice(1).forEach(function (o, k) { options.unshift(["obj" + (k + 1), o.name]); });
    return options;
  }

  function axisValue(row, key) {
    if (key.slice(0, 3) === "obj") { return row.obj[Number(key.slice(3))]; }
    return row[key];
  }

  function selectedTrace(xOf, yOf) {
    if (!selected) { return null; }
    var run = runs[selected.run];
    var row = run && run.byId.get(selected.id);
    if (!row || row.failed) { return null; }
    var x = xOf(row), y = yOf(row);
    if (x === null || x === undefined || y === null || y === undefined) { return null; }
    return {x: [x], y: [y], mode: "markers", type: "scatter", name: "selected", hoverinfo: "skip",
            marker: {size: 18, color: "rgba(0,0,0,0)", line: {color: "#111", width: 2.5}}};
  }

  function renderScatter() {
    var select = $("ev-x");
    var options = axisOptions();
    if (select.options.length !== options.length) {
      clear(select);
      options.forEach(function (o) { select.appendChild(el("option", {value: o[0]}, [o[1]])); });
      if (!options.some(function (o) { return o[0] === ui.x; })) { ui.x = options[0][0]; }
      select.value = ui.x;
    }
    var label = options.filter(function (o) { return o[0] === ui.x; })[0][1];
    var traces = [];
    var total = 0;
    var shown = overlaid("ev-scatter");
    shown.forEach(function (run) {
      var rows = okRows(run).filter(function (r) { var v = axisValue(r, ui.x); return v !== null && v !== undefined; });
      total += rows.length;
      var marker = shown.length === 1
        ? {color: rows.map(function (r) { return r.gen; }), colorscale: "Viridis", showscale: true,
           colorbar: {title: {text: "generation"}, thickness: 12}, size: 8, opacity: 0.85}
        : {color: color(run.index), size: 8, opacity: 0.75};
      traces.push({x: rows.map(function (r) { return axisValue(r, ui.x); }), y: rows.map(function (r) { return r.fit; }),
        mode: "markers", type: scatterType(rows.length), name: pt(run.name), marker: marker,
        hovertext: rows.map(function (r) { return hover(run, r); }), hoverinfo: "text",
        customdata: rows.map(function (r) { return [run.index, r.id]; })});
    });
    if (!total) { message("ev-scatter", "No successful evaluation yet."); return; }
    var s = selectedTrace(function (r) { return axisValue(r, ui.x); }, function (r) { return r.fit; });
    if (s) { traces.push(s); }
    var logX = (ui.x === "params" || ui.x === "flops") && spread(traces[0].x) > 20;
    var obj = shown[0].objectives[0];
    plot("ev-scatter", traces, {height: 420, showlegend: shown.length > 1,
      xaxis: {title: {text: pt(label)}, type: logX ? "log" : "linear"},
      yaxis: {title: {text: pt(obj.name + (obj.maximize ? " (higher is better)" : " (lower is better)"))}}});
  }

  function spread(values) {
    var v = values.filter(function (x) { return x > 0; });
    if (!v.length) { return 1; }
    return Math.max.apply(null, v) / Math.min.apply(null, v);
  }

  function renderFront() {
    var traces = [];
    var axes = null, any = false;
    var shown = overlaid("ev-front");
    shown.forEach(function (run) {
      var ax = run.front.axes && run.front.axes.length === 2 ? run.front.axes : [run.objectives[0].name, "params"];
      axes = axes || ax;
      var yOf = function (r) { return r.fit; };
      var xOf = run.objectives.length > 1 ? function (r) { return r.obj[1]; } : function (r) { return r.params; };
      var rows = okRows(run).filter(function (r) { var x = xOf(r); return x !== null && x !== undefined; });
      if (!rows.length) { return; }
      any = true;
      var c = color(run.index);
      traces.push({x: rows.map(xOf), y: rows.map(yOf), mode: "markers", type: scatterType(rows.length),
        marker: {color: c, size: 6, opacity: 0.3}, name: pt((shown.length > 1 ? run.name + ": " : "") + "evaluated"),
        hovertext: rows.map(function (r) { return hover(run, r); }), hoverinfo: "text",
        customdata: rows.map(function (r) { return [run.index, r.id]; })});
      var front = run.front.ids.map(function (id) { return run.byId.get(id); }).filter(function (r) { return r && !r.failed; });
      front.sort(function (a, b) { return xOf(a) - xOf(b); });
      traces.push({x: front.map(xOf), y: front.map(yOf), mode: "lines+markers", type: "scatter",
        line: {shape: "hv", color: c, width: 1.5}, marker: {size: 11, color: "rgba(0,0,0,0)", line: {color: c, width: 2}},
        name: pt((shown.length > 1 ? run.name + ": " : "") + "Pareto front (" + front.length + ")"),
        hovertext: front.map(function (r) { return hover(run, r); }), hoverinfo: "text",
        customdata: front.map(function (r) { return [run.index, r.id]; })});
    });
    if (!any) { message("ev-front", "No successful evaluation yet."); message("ev-hv", ""); return; }
    var selRun = selected && shown.indexOf(runs[selected.run]) >= 0 ? runs[selected.run] : null;
    var s = selRun && selectedTrace(selRun.objectives.length > 1 ? function (r) { return r.obj[1]; } : function (r) { return r.params; },
                                    function (r) { return r.fit; });
    if (s) { traces.push(s); }
    var xs = traces[0].x;
    var minimized = shown[0].objectives.length > 1 ? !shown[0].objectives[1].maximize : true;
    plot("ev-front", traces, {height: 400, xaxis: {title: {text: pt(axes[1] + (minimized ? " (lower is better)" : " (higher is better)"))},
      type: spread(xs) > 20 ? "log" : "linear"},
      yaxis: {title: {text: pt(axes[0] + (shown[0].objectives[0].maximize ? " (higher is better)" : " (lower is better)"))}}});
    var hv = shown.filter(function (r) { return r.front.hypervolume && r.front.hypervolume.length; });
    if (!hv.length) { $("ev-hv").hidden = true; return; }
    $("ev-hv").hidden = false;
    plot("ev-hv", hv.map(function (run) {
      return {x: run.front.hypervolume.map(function (p) { return p[0]; }), y: run.front.hypervolume.map(function (p) { return p[1]; }),
              mode: "lines+markers", type: "scatter", line: {color: color(run.index)}, name: pt(run.name)};
    }), {height: 260, showlegend: hv.length > 1,
         xaxis: generationAxis(hv.reduce(function (a, r) { return a.concat(r.front.hypervolume.map(function (p) { return p[0]; })); }, [])),
         yaxis: {title: {text: "hypervolume of everything so far"}}});
  }

  function renderParcoords() {
    var run = runs[ui.run] || runs[0];
    var rows = okRows(run).filter(function (r) { return r.genome && r.genome.length === run.genes.length; });
    if (!rows.length || !run.genes.length) { message("ev-parcoords", "No successful evaluation with a genome yet."); return; }
    if (!hasWebGL) { message("ev-parcoords", "The parallel-coordinates view needs WebGL, which this browser does not offer."); return; }
    var dims = run.genes.slice(0, 40).map(function (gene, g) {
      var top = Math.max.apply(null, rows.map(function (r) { return r.genome[g]; }));
      var count = gene.labels ? gene.labels.length : top + 1;
      var ticks = [];
      for (var v = 0; v < count; v++) { ticks.push(v); }
      return {label: pt(gene.name), values: rows.map(function (r) { return r.genome[g]; }), range: [0, Math.max(count - 1, 1)],
              tickvals: ticks, ticktext: ticks.map(function (v) { return pt(geneLabel(run, g, v)); })};
    });
    run.objectives.forEach(function (o, k) {
      dims.push({label: pt(o.name), values: rows.map(function (r) { return k === 0 ? r.fit : r.obj[k]; })});
    });
    var obj = run.objectives[0];
    plot("ev-parcoords", [{type: "parcoords", dimensions: dims,
      line: {color: rows.map(function (r) { return r.fit; }), colorscale: "Viridis", reversescale: !obj.maximize, showscale: true,
             colorbar: {title: {text: pt(obj.name)}, thickness: 12}}}],
      {height: 440, margin: {l: 100, r: 70, t: 60, b: 30}});
  }

  function renderImportance() {
    var run = runs[ui.run] || runs[0];
    var note = clear($("ev-importance-note"));
    var select = $("ev-objective");
    var imp = run.importance;
    if (!imp) { message("ev-importance", live ? "Fitting the surrogate…" : "No importance was computed."); message("ev-values", ""); return; }
    if (imp.unavailable) { message("ev-importance", imp.unavailable); message("ev-values", ""); select.hidden = true; return; }
    var list = imp.objectives || [];
    select.hidden = list.length < 2;
    if (select.options.length !== list.length) {
      clear(select);
      list.forEach(function (o, k) { select.appendChild(el("option", {value: k}, [o.objective])); });
    }
    if (ui.objective >= list.length) { ui.objective = 0; }
    select.value = String(ui.objective);
    var one = list[ui.objective];
    if (!one) { message("ev-importance", "No objective to explain."); return; }
    if (one.unavailable) { message("ev-importance", one.unavailable); message("ev-values", ""); return; }
    var genes = one.genes.slice(0, 30).reverse();  // plotly draws the first bar at the bottom
    plot("ev-importance", [{type: "bar", orientation: "h", x: genes.map(function (g) { return g.importance; }),
      y: genes.map(function (g) { return pt(g.name); }), marker: {color: "#4a6fa5"},
      error_x: {type: "data", array: genes.map(function (g) { return g.std; }), color: "#333", thickness: 1.2},
      hovertext: genes.map(function (g) { return pt(g.name + ": " + fmt(g.importance) + " ± " + fmt(g.std)); }),
      hoverinfo: "text"}],
      {height: Math.max(220, 24 * genes.length + 70), margin: {l: 130, r: 20, t: 10, b: 45},
       xaxis: {title: {text: "share of " + pt(one.objective) + "'s variance (± spread over trees)"}, rangemode: "tozero"}});
    $("ev-importance").evonasBarClick = function (p) { ui.gene = genes[p.pointIndex].gene; renderValues(run, one); };
    note.appendChild(document.createTextNode("Permutation importance in a random forest of " + one.trees +
      " trees fitted to " + one.rows + " architectures; the forest explains " +
      (one.r2 === null ? "–" : Math.round(100 * Math.max(0, one.r2)) + " %") +
      " of " + one.objective + " out of bag. Click a gene for its values."));
    if (ui.gene === null || !one.genes.some(function (g) { return g.gene === ui.gene; })) { ui.gene = one.genes[0].gene; }
    renderValues(run, one);
  }

  function renderValues(run, one) {
    var gene = one.genes.filter(function (g) { return g.gene === ui.gene; })[0];
    if (!gene) { message("ev-values", ""); return; }
    plot("ev-values", [{type: "bar", x: gene.values.map(function (v) { return pt(v.label); }),
      y: gene.values.map(function (v) { return v.effect; }),
      error_y: {type: "data", array: gene.values.map(function (v) { return v.std; }), color: "#333", thickness: 1.2},
      marker: {color: gene.values.map(function (v) { return (v.effect || 0) * (run.objectives[ui.objective] && !run.objectives[ui.objective].maximize ? -1 : 1) >= 0 ? "#2ca02c" : "#d62728"; })},
      hovertext: gene.values.map(function (v) { return pt(gene.name + " = " + v.label + ": " + fmt(v.effect) + " ± " + fmt(v.std) + " (n=" + v.count + ")"); }),
      hoverinfo: "text"}],
      {height: 260, margin: {l: 60, r: 20, t: 30, b: 60},
       title: {text: pt(gene.name + ": effect of each value on " + one.objective), font: {size: 13}},
       xaxis: {type: "category"}, yaxis: {title: {text: "partial dependence − mean"}}});
  }

  function ancestors(run, id) {
    var seen = new Set([id]), queue = [id];
    while (queue.length) {
      var row = run.byId.get(queue.shift());
      (row ? row.parents : []).forEach(function (p) { if (!seen.has(p) && run.byId.has(p)) { seen.add(p); queue.push(p); } });
    }
    return seen;
  }

  function renderLineage() {
    var run = runs[ui.run] || runs[0];
    var rows = okRows(run);
    if (!rows.length) { message("ev-lineage", "No successful evaluation yet."); return; }
    var byGen = new Map();
    rows.forEach(function (r) { if (!byGen.has(r.gen)) { byGen.set(r.gen, []); } byGen.get(r.gen).push(r); });
    var pos = new Map();
    byGen.forEach(function (list, g) {
      list.forEach(function (r, k) { pos.set(r.id, [g + (list.length > 1 ? (k / (list.length - 1) - 0.5) * 0.6 : 0), r.fit]); });
    });
    var focus = selected && selected.run === run.index ? selected.id : run.best;
    var chain = focus !== null && focus !== undefined ? ancestors(run, focus) : new Set();
    var ex = [], ey = [], cx = [], cy = [];
    rows.forEach(function (r) {
      r.parents.forEach(function (p) {
        var a = pos.get(p), b = pos.get(r.id);
        if (!a || !b) { return; }
        var onChain = chain.has(r.id) && chain.has(p);
        (onChain ? cx : ex).push(a[0], b[0], null);
        (onChain ? cy : ey).push(a[1], b[1], null);
      });
    });
    var type = scatterType(rows.length);
    var traces = [
      {x: ex, y: ey, mode: "lines", type: type, line: {color: "rgba(120,120,120,0.35)", width: 1}, hoverinfo: "skip", name: "parent → child"},
      {x: cx, y: cy, mode: "lines", type: "scatter", line: {color: "#d9622b", width: 2.5}, hoverinfo: "skip",
       name: focus === run.best ? "the best's ancestry" : "the selected's ancestry"},
      {x: rows.map(function (r) { return pos.get(r.id)[0]; }), y: rows.map(function (r) { return r.fit; }), mode: "markers", type: type,
       marker: {size: 7, color: rows.map(function (r) { return chain.has(r.id) ? "#d9622b" : color(run.index); })},
       hovertext: rows.map(function (r) { return hover(run, r) + "<br>" + pt("parents: " + (r.parents.length ? r.parents.map(function (p) { return "#" + p; }).join(", ") : "none")); }),
       hoverinfo: "text", customdata: rows.map(function (r) { return [run.index, r.id]; }), name: "architecture"}];
    plot("ev-lineage", traces, {height: 440, xaxis: generationAxis(Array.from(byGen.keys())),
      yaxis: {title: {text: pt(run.objectives[0].name)}}});
  }

  function renderTable() {
    var table = $("ev-table");
    var all = [];
    runs.forEach(function (run) { run.rows.forEach(function (row) { all.push([run, row]); }); });
    table.setAttribute("data-total", String(all.length));
    var key = {
      best: function (a, b) {
        var fa = a[1].fit, fb = b[1].fit;
        if (fa === null && fb === null) { return a[1].id - b[1].id; }
        if (fa === null) { return 1; }
        if (fb === null) { return -1; }
        return better(a[0]) * (fb - fa) || a[1].id - b[1].id;
      },
      newest: function (a, b) { return b[1].gen - a[1].gen || b[1].id - a[1].id; },
      oldest: function (a, b) { return a[1].gen - b[1].gen || a[1].id - b[1].id; }
    }[ui.sort];
    all.sort(key);
    var shown = all.slice(0, TABLE_ROWS);
    var multi = runs.length > 1;
    var extra = runs[0] ? runs[0].objectives.slice(1) : [];
    var heads = (multi ? ["run"] : []).concat(["id", "generation", runs[0] ? runs[0].objectives[0].name : "fitness"],
      extra.map(function (o) { return o.name; }), ["params", "flops", "fitness estimated by", "parents", "genes"]);
    var thead = el("thead", {}, [el("tr", {}, heads.map(function (h) { return el("th", {}, [h]); }))]);
    var tbody = el("tbody", {}, shown.map(function (pair) {
      var run = pair[0], row = pair[1];
      var isSel = selected && selected.run === run.index && selected.id === row.id;
      var cells = (multi ? [el("td", {}, [run.name])] : []).concat([
        el("td", {"class": "num"}, [row.id]), el("td", {"class": "num"}, [row.gen]),
        el("td", {"class": "num"}, [row.failed ? "failed" : fmt(row.fit)])],
        extra.map(function (o, k) { return el("td", {"class": "num"}, [fmt(row.obj[k + 1])]); }),
        [el("td", {"class": "num"}, [fmt(row.params)]), el("td", {"class": "num"}, [fmt(row.flops)]),
         el("td", {}, [estimate(row)]), el("td", {}, [row.parents.map(function (p) { return "#" + p; }).join(" ")]),
         el("td", {"class": "ev-genes"}, [geneText(run, row, 120)])]);
      return el("tr", {"class": (isSel ? "ev-selected" : "") + (row.failed ? " ev-failed" : ""), "data-run": run.index, "data-id": row.id,
                       on: {click: function () { select(run.index, row.id); }}}, cells);
    }));
    clear(table).appendChild(thead);
    table.appendChild(tbody);
    var note = all.length > TABLE_ROWS
      ? "Showing " + TABLE_ROWS + " of " + all.length + " evaluated architectures." : all.length + " evaluated architectures.";
    var held = runs.filter(function (r) { return r.summary && r.summary.shown < r.summary.evaluations; });
    if (held.length) {
      note += " This report holds " + held.map(function (r) { return r.summary.shown + " of " + r.name + "'s " + r.summary.evaluations; }).join(", ") +
        " (the best, the front, the best's ancestry and a fixed sample); evonas dashboard shows every one.";
    }
    $("ev-table-note").textContent = note;
  }

  // -- the selected architecture ---------------------------------------------------------------

  function select(runIndex, id) {
    selected = {run: Number(runIndex), id: Number(id)};
    if (runs.length > 1 && ui.run !== selected.run) {
      ui.run = selected.run; $("ev-run").value = String(ui.run); ui.gene = null; renderAll(); return;
    }
    renderDetails();
    renderScatter(); renderFront(); renderLineage(); renderTable();
  }

  function kvTable(pairs) {
    return el("table", {"class": "ev-kv"}, [el("tbody", {}, pairs.map(function (p) {
      return el("tr", {}, [el("th", {}, [p[0]]), el("td", {}, [p[1]])]);
    }))]);
  }

  function idLinks(run, ids) {
    if (!ids.length) { return "none"; }
    var span = el("span", {});
    ids.forEach(function (id) {
      span.appendChild(el("button", {type: "button", "class": "ev-link", on: {click: function () { select(run.index, id); }}}, ["#" + id]));
      span.appendChild(document.createTextNode(" "));
    });
    return span;
  }

  function details(run, id) {
    if (run.details[id]) { return Promise.resolve(run.details[id]); }
    if (!live) { return Promise.resolve(null); }
    return fetch("api/runs/" + run.index + "/evaluations/" + id, {headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { run.details[id] = d; } return d; })
      .catch(function () { return null; });
  }

  function renderDetails() {
    var node = $("ev-details");
    if (!selected) { return; }
    var run = runs[selected.run];
    var row = run && run.byId.get(selected.id);
    if (!row) { clear(node).appendChild(el("p", {}, ["#" + selected.id + " is not in the history (any more)."])); return; }
    var pairs = [["run", run.name], ["generation", row.gen]];
    run.objectives.forEach(function (o, k) { pairs.push([o.name + (o.maximize ? " (higher is better)" : " (lower is better)"), row.failed ? "–" : fmt(k === 0 ? row.fit : row.obj[k])]); });
    pairs.push(["params", fmt(row.params)], ["flops", fmt(row.flops)], ["fitness estimated by", estimate(row)]);
    if (row.failed) { pairs.push(["failed", row.reason || "yes"]); }
    pairs.push(["parents", idLinks(run, row.parents)], ["children", idLinks(run, run.children.get(row.id) || [])]);
    var genes = row.genome ? row.genome.map(function (v, g) {
      return [run.genes[g] ? run.genes[g].name : "gene_" + g, geneLabel(run, g, v) + (run.genes[g] && run.genes[g].labels ? "  (" + v + ")" : "")];
    }) : [];
    clear(node);
    node.appendChild(el("h3", {}, ["#" + row.id + (runs.length > 1 ? " of " + run.name : "")]));
    node.appendChild(kvTable(pairs));
    node.appendChild(el("h4", {}, ["Genes"]));
    node.appendChild(kvTable(genes));
    var rest = el("div", {}, [el("p", {"class": "ev-empty"}, ["Loading its description…"])]);
    node.appendChild(rest);
    var want = selected;
    details(run, row.id).then(function (d) {
      if (selected !== want) { return; }
      clear(rest);
      if (!d) {
        rest.appendChild(el("p", {"class": "ev-empty"}, [live ? "No description." : "This report keeps the descriptions of " +
          "the best architectures, the front and the best's ancestry only; evonas dashboard shows every one."]));
        return;
      }
      rest.appendChild(el("h4", {}, ["Architecture"]));
      rest.appendChild(drawArchitecture(d.description || {}));
      var metrics = Object.keys(d.metrics || {}).sort().map(function (k) { var v = d.metrics[k]; return [k, typeof v === "object" ? JSON.stringify(v) : fmt(v)]; });
      if (metrics.length) { rest.appendChild(el("h4", {}, ["Metrics"])); rest.appendChild(kvTable(metrics)); }
      rest.appendChild(el("details", {}, [el("summary", {}, ["description (JSON)"]), el("pre", {}, [JSON.stringify(d.description, null, 1)])]));
    });
  }

  // -- drawing an architecture (SVG, from its description) -------------------------------------

  var SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function short(value, width) {
    var text = typeof value === "string" ? value : JSON.stringify(value);
    if (text === undefined) { text = String(value); }
    return text.length <= width ? text : text.slice(0, width - 1) + "…";
  }

  function layerText(layer) {
    if (layer === null || typeof layer !== "object") { return short(layer, 40); }
    var op = layer.op || layer.type || "layer";
    var parts = [String(op)];
    var size = layer.width !== undefined ? layer.width : layer.features;
    if (size !== undefined) { parts.push("× " + size); }
    if (layer.activation !== undefined && op !== "identity" && String(op).indexOf("pool") < 0) { parts.push(String(layer.activation)); }
    if (layer.residual === true) { parts.push("residual"); }
    return short(parts.join("  "), 40);
  }

  function drawArchitecture(d) {
    var boxes = [];
    if (Array.isArray(d.layers)) {
      if (d.input_shape !== undefined) { boxes.push(["input " + short(d.input_shape, 30), "io"]); }
      if (d.stem && typeof d.stem === "object") { boxes.push(["stem: " + layerText(d.stem), ""]); }
      d.layers.forEach(function (layer) { boxes.push([layerText(layer), ""]); });
      if (d.num_classes !== undefined) { boxes.push(["classifier → " + short(d.num_classes, 12) + " classes", "io"]); }
      return chain(boxes);
    }
    if (d.nodes && typeof d.nodes === "object") { return cell(d.nodes); }
    Object.keys(d).filter(function (k) { return ["encoding", "params", "flops"].indexOf(k) < 0; }).forEach(function (k) {
      boxes.push([short(k, 20) + ": " + short(d[k], 40), ""]);
    });
    return chain(boxes, true);
  }

  function chain(boxes, noArrows) {
    var w = 300, h = 26, gap = 16;
    var root = svg("svg", {viewBox: "0 0 " + w + " " + Math.max(h, boxes.length * (h + gap) - gap + 4), "class": "ev-arch",
                           role: "img", "aria-label": "architecture"});
    boxes.forEach(function (b, i) {
      var y = 2 + i * (h + gap);
      root.appendChild(svg("rect", {x: 10, y: y, width: w - 20, height: h, rx: 6, "class": "ev-box " + b[1]}));
      root.appendChild(svg("text", {x: w / 2, y: y + h / 2 + 4, "text-anchor": "middle"}, b[0]));
      if (i > 0 && !noArrows) {
        root.appendChild(svg("line", {x1: w / 2, y1: y - gap, x2: w / 2, y2: y - 2, "class": "ev-arrow"}));
      }
    });
    return root;
  }

  function cell(nodes) {
    var names = new Set();
    Object.keys(nodes).forEach(function (t) {
      names.add(t);
      if (nodes[t] && typeof nodes[t] === "object") { Object.keys(nodes[t]).forEach(function (s) { names.add(s); }); }
    });
    var order = Array.from(names).sort();
    var w = 320, step = (w - 60) / Math.max(1, order.length - 1), y0 = 150;
    var x = {};
    order.forEach(function (n, i) { x[n] = 30 + i * step; });
    var root = svg("svg", {viewBox: "0 0 " + w + " 190", "class": "ev-arch", role: "img", "aria-label": "cell"});
    Object.keys(nodes).forEach(function (t) {
      var edges = nodes[t] && typeof nodes[t] === "object" ? nodes[t] : {};
      Object.keys(edges).forEach(function (s) {
        var op = edges[s];
        if (op === "none" || x[s] === undefined) { return; }
        var x1 = x[s], x2 = x[t], r = Math.abs(x2 - x1) / 2, mid = (x1 + x2) / 2;
        root.appendChild(svg("path", {d: "M " + x1 + " " + (y0 - 14) + " A " + r + " " + Math.min(r, 120) + " 0 0 1 " + x2 + " " + (y0 - 14),
                                      "class": "ev-edge"}));
        root.appendChild(svg("text", {x: mid, y: y0 - 14 - Math.min(r, 120) - 3, "text-anchor": "middle", "class": "ev-op"}, short(op, 18)));
      });
    });
    order.forEach(function (n) {
      root.appendChild(svg("circle", {cx: x[n], cy: y0, r: 14, "class": "ev-node"}));
      root.appendChild(svg("text", {x: x[n], y: y0 + 4, "text-anchor": "middle", "class": "ev-node-text"}, short(n.replace(/^node_/, ""), 4)));
    });
    return root;
  }

  // -- putting it together ---------------------------------------------------------------------

  function renderPerRun() { renderParcoords(); renderImportance(); renderLineage(); }

  function renderDiagnostics() {
    var run = runs[ui.run] || runs[0];
    var gens = run ? (run.generations || []).filter(function (g) { return g.diagnostics; }) : [];
    var wrap = $("ev-diagnostics-wrap");
    if (!gens.length) { wrap.hidden = true; return; }
    wrap.hidden = false;
    var names = [];
    gens.forEach(function (g) {
      Object.keys(g.diagnostics).forEach(function (k) { if (k !== "epoch" && names.indexOf(k) < 0) { names.push(k); } });
    });
    var traces = names.map(function (k) {
      return {x: gens.map(function (g) { return g.generation; }),
              y: gens.map(function (g) { var v = g.diagnostics[k]; return typeof v === "number" ? v : null; }),
              mode: "lines+markers", type: "scatter", name: k};
    });
    plot("ev-diagnostics", traces, {height: 300, xaxis: {title: {text: "generation"}}});
  }

  function renderAll() {
    renderRuns(); renderRunSelect(); renderProgress(); renderDiagnostics(); renderScatter(); renderFront();
    renderPerRun(); renderTable();
    if (selected) { renderDetails(); }
  }

  function status(text) { $("ev-status").textContent = text; }

  function fetchJSON(url) {
    return fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  function refreshImportance(run) {
    var now = Date.now();
    if (run.importanceTotal === run.rows.length || now - run.importanceAt < IMPORTANCE_EVERY_MS) { return Promise.resolve(false); }
    run.importanceAt = now;
    var total = run.rows.length;
    return fetchJSON("api/runs/" + run.index + "/importance").then(function (d) {
      run.importance = d;
      run.importanceTotal = total;
      return true;
    });
  }

  function poll() {
    var changed = false;
    Promise.all(runs.map(function (run) {
      var url = "api/runs/" + run.index + "?since=" + run.rows.length + (run.epoch === null ? "" : "&epoch=" + run.epoch);
      return fetchJSON(url).then(function (d) {
        var before = run.rows.length;
        if (d.reset || (d.rows && d.rows.length) || run.epoch === null) { changed = true; }
        update(run, d);
        if (run.rows.length !== before || d.reset) { changed = true; }
        return refreshImportance(run).then(function (c) { changed = changed || c; });
      });
    })).then(function () {
      if (changed) { renderAll(); }
      status("Live: " + runs.map(function (r) { return r.name + " " + r.rows.length + " evaluations"; }).join(", ") +
             "; updated " + new Date().toLocaleTimeString() + ".");
    }, function (err) {
      status("The dashboard is not answering (" + err.message + "); retrying.");
    }).then(function () { setTimeout(poll, (config.interval || 2) * 1000); });
  }

  function bind() {
    $("ev-x").addEventListener("change", function (e) { ui.x = e.target.value; renderScatter(); });
    $("ev-run").addEventListener("change", function (e) { ui.run = Number(e.target.value); ui.gene = null; renderAll(); });
    $("ev-objective").addEventListener("change", function (e) { ui.objective = Number(e.target.value); ui.gene = null; renderImportance(); });
    $("ev-sort").addEventListener("change", function (e) { ui.sort = e.target.value; renderTable(); });
  }

  function start() {
    if (!window.Plotly) { status("plotly.js did not load: the plots can't be drawn."); return; }
    bind();
    if (live) {
      (config.runs || []).forEach(function (r, i) { addRun(i, {name: r.name}); });
      status("Connecting…");
      poll();
    } else {
      (config.runs || []).forEach(function (data, i) { addRun(i, data); });
      status("");
      var first = runs[0];
      if (first && first.best !== null) { selected = {run: 0, id: first.best}; }  // drawn once
      renderAll();
    }
  }

  start();
}());
