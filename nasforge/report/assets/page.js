/* nasforge's experiment page: the same code draws the live dashboard and the offline report.
   Data comes from window.NF_BOOT: {mode: "report"|"live", experiments: [...] (report), benchmark}.
   Live mode fetches api/data and polls api/version; a chart is drawn only when its view is shown,
   so a page left open costs the browser almost nothing between changes. */
(function () {
  "use strict";
  const BOOT = window.NF_BOOT || {mode: "report"};
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const STATE_COLOUR = {COMPLETE: "#0072B2", FAILED: "#D55E00", PRUNED: "#E69F00", RUNNING: "#009E73", WAITING: "#999999"};
  const VIEWS = [
    ["trials", "Trials"], ["progress", "Objective"], ["workers", "Workers"], ["pareto", "Pareto"],
    ["arch", "Architecture"], ["learning", "Policy"], ["importance", "Importance"], ["final", "Final"],
    ["benchmark", "Benchmark"]];
  const S = {experiments: [], current: 0, view: "trials", selected: null, sort: {key: "number", dir: 1},
             version: null, stale: {}, benchmark: BOOT.benchmark || null, policyDecision: null, drawn: {},
             paretoX: null, paretoY: null, page: 0};
  // Rows of the trials table drawn at once: a live page redraws the table at every change, and a
  // headless Chromium spent about 0.3 s of CPU per redraw of 1,000 rows beside a running search.
  const PAGE_ROWS = 100;
  window.NF_STATE = S;  // for the tests: which view is shown, how many times data arrived

  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "onclick" || k === "onchange") node[k] = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  };
  const ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  const escapeHtml = (v) => String(v).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const isAcc = (name) => /acc$/.test(name) || name.includes("_acc_");
  function fmt(name, v) {
    if (v === null || v === undefined) return "-";
    if (isAcc(name)) return (100 * v).toFixed(2) + "%";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  }
  const exp = () => S.experiments[S.current];
  const layout = (extra) => Object.assign({margin: {l: 60, r: 20, t: 40, b: 50}, hovermode: "closest",
                                            font: {size: 12}, legend: {orientation: "h", y: -0.2}}, extra);

  function plot(id, traces, lay) {
    const div = document.getElementById(id);
    if (!div) return;
    div.dataset.rendered = "0";
    if (typeof lay.title === "string") lay.title = {text: lay.title};  // plotly.js 3 takes no bare string
    Plotly.react(div, traces, layout(lay), {displaylogo: false, responsive: true}).then(() => {
      div.dataset.rendered = "1";
    });
  }

  // ---- page frame ---------------------------------------------------------------------------
  function frame() {
    const nav = $("nav");
    nav.innerHTML = "";
    for (const [key, label] of VIEWS) {
      if (key === "benchmark" && !S.benchmark) continue;
      nav.append(el("button", {"data-view": key, class: key === S.view ? "active" : "",
                               onclick: () => show(key)}, label));
    }
  }

  function header() {
    const box = $("#experiments");
    box.innerHTML = "";
    if (S.experiments.length > 1) {
      S.experiments.forEach((e, i) => box.append(el("button", {class: i === S.current ? "active" : "",
        "data-experiment": String(i), onclick: () => { S.current = i; S.selected = null; header(); markAllStale(); show(S.view); }},
        e.name)));
    }
    const e = exp();
    const status = $("#status");
    if (!e) { status.textContent = BOOT.mode === "live" ? "waiting for data" : (S.benchmark ? "benchmark comparison" : ""); return; }
    if (e.error) { status.textContent = e.name + ": " + e.error; return; }
    const c = e.counts, finished = c.COMPLETE + c.FAILED + c.PRUNED;
    const learning = e.learning && e.learning.kind === "population" ? "Population" : "Policy";
    const tab = document.querySelector('nav button[data-view="learning"]');
    if (tab) tab.textContent = learning;
    let text = `${e.name}: ${e.settings.strategy} on ${e.settings.space}, ${finished} of ${e.settings.budget} trials finished`;
    if (c.FAILED) text += `, ${c.FAILED} failed`;
    if (c.RUNNING) text += `, ${c.RUNNING} running`;
    if (BOOT.mode === "live" && e.last_change) {
      text += ` · last change ${new Date(e.last_change * 1000).toLocaleTimeString()}`;
    } else if (e.generated) {
      text += ` · report written ${new Date(e.generated * 1000).toLocaleString()}`;
    }
    status.textContent = text;
  }

  function markAllStale() { for (const [key] of VIEWS) S.stale[key] = true; }

  function show(view) {
    S.view = view;
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
    document.querySelectorAll("section.view").forEach((s) => s.classList.toggle("active", s.id === "view-" + view));
    if (S.stale[view] !== false) { S.stale[view] = false; render(view); }
  }

  function render(view) {
    const section = $("#view-" + view);
    const e = exp();
    if (view === "benchmark") { renderBenchmark(section); return; }
    if (!e || e.error || !e.trials.length) {
      section.innerHTML = "";
      const why = !e ? "Loading…" : e.error ? e.error : "No trials yet: this page updates when the first one is stored.";
      section.append(el("div", {class: "empty"}, why));
      return;
    }
    ({trials: renderTrials, progress: renderProgress, workers: renderWorkers, pareto: renderPareto,
      arch: renderArch, learning: renderLearning, importance: renderImportance, final: renderFinal})[view](section, e);
  }

  // ---- trials table -------------------------------------------------------------------------
  function tableMetrics(e) {
    const known = (e.pareto ? e.pareto.metrics : []).filter((m) => m !== e.settings.metric);
    const others = e.metric_names.filter((m) => !known.includes(m) && m !== e.settings.metric);
    return known.concat(others).slice(0, 8);
  }

  function renderTrials(section, e) {
    const metric = e.settings.metric, metrics = tableMetrics(e);
    const cols = [["number", "trial"], ["state", "state"], ["objective", metric], ["reward", "reward"],
                  ["feasible", "feasible"], ["duration", "time s"], ["worker", "worker"]]
      .concat(metrics.map((m) => ["m:" + m, m])).concat([["summary", "architecture"], ["error", "error"]]);
    const value = (t, key) => key.startsWith("m:") ? t.metrics[key.slice(2)] : t[key];
    const rows = e.trials.slice().sort((a, b) => {
      const x = value(a, S.sort.key), y = value(b, S.sort.key);
      if (x === y) return a.id - b.id;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * S.sort.dir;
    });
    const head = el("tr", {});
    for (const [key, label] of cols) {
      const cls = S.sort.key === key ? (S.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : "";
      head.append(el("th", {class: cls, "data-key": key, onclick: () => {
        S.sort = {key, dir: S.sort.key === key ? -S.sort.dir : (key === "objective" && e.settings.direction === "maximize" ? -1 : 1)};
        S.page = 0;
        render("trials");
      }}, label));
    }
    // the rows as one string: a live page redraws this table at every change, and building
    // thousands of cells one element at a time costs the browser tens of times more
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    S.page = Math.min(S.page, pages - 1);
    const first = S.page * PAGE_ROWS, shown = rows.slice(first, first + PAGE_ROWS);
    const html = [];
    for (const t of shown) {
      html.push(`<tr data-number="${t.number}" data-id="${t.id}"${S.selected === t.id ? ' class="selected"' : ""}>`);
      for (const [key] of cols) {
        let v = value(t, key), cls = "";
        if (key === "number") v = t.attempt ? `${t.number}.${t.attempt}` : t.number;
        else if (key === "state") cls = "state-" + t.state;
        else if (key === "objective") v = fmt(metric, v);
        else if (key === "reward") v = v === null ? "-" : v.toFixed(4);
        else if (key === "feasible") v = t.state === "COMPLETE" ? (v ? "yes" : "no") : "-";
        else if (key === "duration") v = v === null ? "-" : v.toFixed(2);
        else if (key.startsWith("m:")) v = fmt(key.slice(2), v);
        else if (key === "summary") cls = "arch";
        else if (key === "error") { cls = "error"; v = v || ""; }
        html.push(`<td${cls ? ` class="${escapeHtml(cls)}"` : ""}>${escapeHtml(v === undefined || v === null ? "-" : v)}</td>`);
      }
      html.push("</tr>");
    }
    const body = el("tbody", {onclick: (ev) => {
      const tr = ev.target.closest("tr");
      if (tr) select(Number(tr.dataset.id));
    }});
    body.innerHTML = html.join("");
    section.innerHTML = "";
    const turn = (step) => () => { S.page += step; render("trials"); };
    const pager = el("p", {class: "note", id: "trials-pager"},
      `${e.trials.length} trials; click a column to sort, a trial to see its architecture. `);
    if (pages > 1) {
      pager.append(el("button", {id: "trials-prev", onclick: turn(-1), ...(S.page === 0 ? {disabled: ""} : {})}, "previous"),
                   ` rows ${first + 1}-${first + shown.length} of ${rows.length} `,
                   el("button", {id: "trials-next", onclick: turn(1), ...(S.page === pages - 1 ? {disabled: ""} : {})}, "next"));
    }
    section.append(pager);
    section.append(el("div", {class: "tablewrap"}, el("table", {class: "trials", id: "trials-table"}, el("thead", {}, head), body)));
  }

  function select(id) {
    S.selected = id;
    S.stale.arch = true;
    show("arch");
  }

  // ---- objective over trials ------------------------------------------------------------------
  function renderProgress(section, e) {
    section.innerHTML = "";
    section.append(el("div", {class: "chart", id: "chart-progress"}));
    const metric = e.settings.metric, scale = isAcc(metric) ? 100 : 1, unit = isAcc(metric) ? " (%)" : "";
    const traces = [];
    for (const state of ["COMPLETE", "PRUNED", "FAILED"]) {
      const ts = e.trials.filter((t) => t.state === state && t.objective !== null);
      if (!ts.length) continue;
      traces.push({type: "scatter", mode: "markers", name: state.toLowerCase(), x: ts.map((t) => t.number),
                   y: ts.map((t) => t.objective * scale), text: ts.map((t) => t.summary),
                   marker: {color: STATE_COLOUR[state], size: 6,
                            symbol: ts.map((t) => t.feasible ? "circle" : "x")}});
    }
    traces.push({type: "scatter", mode: "lines", name: "best so far", line: {shape: "hv", color: "#000"},
                 x: e.trials.map((t) => t.number), y: e.best_so_far.map((v) => v === null ? null : v * scale)});
    const failed = e.trials.filter((t) => t.state === "FAILED").length;
    plot("chart-progress", traces, {title: `${metric} over trials` + (failed ? ` (${failed} failed, not drawn)` : ""),
                                    xaxis: {title: {text: "trial"}}, yaxis: {title: {text: metric + unit}}});
    if (S.experiments.length > 1) {
      section.append(el("div", {class: "chart", id: "chart-compare"}));
      const traces2 = S.experiments.filter((x) => x.trials && x.trials.length).map((x, i) => ({
        type: "scatter", mode: "lines", name: x.name, line: {shape: "hv", color: PALETTE[i % PALETTE.length]},
        x: x.trials.map((t) => t.number), y: x.best_so_far.map((v) => v === null ? null : v * (isAcc(x.settings.metric) ? 100 : 1))}));
      plot("chart-compare", traces2, {title: "best so far, every experiment", xaxis: {title: {text: "trial"}},
                                      yaxis: {title: {text: metric + unit}}});
    }
  }

  // ---- workers: which trial ran where, how long ----------------------------------------------
  function renderWorkers(section, e) {
    section.innerHTML = "";
    const ts = e.trials.filter((t) => t.start !== null && t.end !== null);
    const workers = Array.from(new Set(ts.map((t) => t.worker))).sort();
    const busy = workers.map((w) => ts.filter((t) => t.worker === w).reduce((s, t) => s + (t.end - t.start), 0));
    const span = Math.max(1e-9, ...ts.map((t) => t.end)) - Math.min(...ts.map((t) => t.start));
    section.append(el("p", {class: "note"}, "Busy share of the search's wall time: " +
      workers.map((w, i) => `${w} ${(100 * busy[i] / span).toFixed(0)}%`).join(", ") +
      ". Failed trials are red; hover a bar for the trial."));
    section.append(el("div", {class: "chart", id: "chart-workers"}));
    const traces = [];
    for (const state of ["COMPLETE", "PRUNED", "FAILED", "RUNNING"]) {
      const g = ts.filter((t) => t.state === state);
      if (!g.length) continue;
      traces.push({type: "bar", orientation: "h", name: state.toLowerCase(), y: g.map((t) => t.worker),
                   x: g.map((t) => Math.max(t.end - t.start, span / 2000)), base: g.map((t) => t.start),
                   marker: {color: STATE_COLOUR[state]},
                   text: g.map((t) => `trial ${t.number}: ${(t.end - t.start).toFixed(2)} s` + (t.error ? " — " + t.error.slice(0, 80) : "")),
                   hoverinfo: "text", textposition: "none"});
    }
    plot("chart-workers", traces, {title: "trials per worker over time", barmode: "overlay",
                                   xaxis: {title: {text: "seconds since the first trial started"}},
                                   yaxis: {type: "category"}, height: 200 + 30 * workers.length});
  }

  // ---- Pareto front of two metrics, hypervolume over trials ----------------------------------
  function renderPareto(section, e) {
    section.innerHTML = "";
    if (!e.pareto) { section.append(el("div", {class: "empty"}, "The Pareto fronts are being computed; they appear in a moment.")); return; }
    const ms = e.pareto.metrics;
    if (ms.length < 2) {
      section.append(el("div", {class: "empty"}, "A Pareto front needs two metrics with a known direction in the completed trials."));
      return;
    }
    if (!ms.includes(S.paretoX)) S.paretoX = ms[0];
    if (!ms.includes(S.paretoY) || S.paretoY === S.paretoX) S.paretoY = ms.find((m) => m !== S.paretoX &&
      ["params", "latency_ms", "flops"].includes(m)) || ms.find((m) => m !== S.paretoX);
    const pick = (id, cur, set) => {
      const s = el("select", {id, onchange: (ev) => { set(ev.target.value); render("pareto"); }});
      for (const m of ms) { const o = el("option", {value: m}, m); if (m === cur) o.selected = true; s.append(o); }
      return s;
    };
    section.append(el("div", {}, "x ", pick("pareto-x", S.paretoX, (v) => { S.paretoX = v; }),
                      " y ", pick("pareto-y", S.paretoY, (v) => { S.paretoY = v; })));
    const x = S.paretoX, y = S.paretoY;
    const pair = e.pareto.pairs[`${x}|${y}`] || e.pareto.pairs[`${y}|${x}`];
    section.append(el("div", {class: "row"}, el("div", {class: "chart", id: "chart-pareto"}), el("div", {class: "chart", id: "chart-hv"})));
    const val = (t, m) => t.metrics[m] !== undefined ? t.metrics[m] : (m === e.settings.metric ? t.objective : null);
    const ts = e.trials.filter((t) => t.state === "COMPLETE" && val(t, x) !== null && val(t, y) !== null && val(t, x) !== undefined && val(t, y) !== undefined);
    const front = new Set(pair ? pair.front : []);
    const sx = isAcc(x) ? 100 : 1, sy = isAcc(y) ? 100 : 1;
    const frontTs = ts.filter((t) => front.has(t.number) && t.feasible).sort((a, b) => val(a, x) - val(b, x));
    plot("chart-pareto", [
      {type: "scatter", mode: "markers", name: "trials", x: ts.map((t) => val(t, x) * sx), y: ts.map((t) => val(t, y) * sy),
       text: ts.map((t) => `trial ${t.number}: ${t.summary}`), marker: {color: "#999", size: 6, symbol: ts.map((t) => t.feasible ? "circle" : "x")}},
      {type: "scatter", mode: "lines+markers", name: "Pareto front", x: frontTs.map((t) => val(t, x) * sx),
       y: frontTs.map((t) => val(t, y) * sy), text: frontTs.map((t) => `trial ${t.number}: ${t.summary}`),
       line: {shape: "hv", color: "#D55E00"}, marker: {color: "#D55E00", size: 9}}],
      {title: `${x} (${e.pareto.directions[x].slice(0, 3)}) vs ${y} (${e.pareto.directions[y].slice(0, 3)})`,
       xaxis: {title: {text: x + (isAcc(x) ? " (%)" : "")}, type: ["params", "flops"].includes(x) ? "log" : "linear"},
       yaxis: {title: {text: y + (isAcc(y) ? " (%)" : "")}, type: ["params", "flops"].includes(y) ? "log" : "linear"}});
    const hv = pair ? pair.hv : [];
    plot("chart-hv", [{type: "scatter", mode: "lines", name: "hypervolume", x: hv.map((p) => p[0]), y: hv.map((p) => p[1]),
                       line: {shape: "hv", color: "#0072B2"}}],
         {title: "hypervolume of the trials so far", xaxis: {title: {text: "trial"}},
          yaxis: {title: {text: "hypervolume"}}, showlegend: false});
    if (pair) section.append(el("p", {class: "note"}, `Reference point (${x}, ${y}) = (${pair.reference.map((v) => v.toPrecision(4)).join(", ")}): ` +
      "each metric's worst value pushed 10% of its range further; comparable only between searches with the same point."));
  }

  // ---- architecture drawing ------------------------------------------------------------------
  function renderArch(section, e) {
    section.innerHTML = "";
    let t = e.trials.find((x) => x.id === S.selected);
    if (!t) {
      const done = e.trials.filter((x) => x.state === "COMPLETE" && x.feasible && x.objective !== null);
      const sign = e.settings.direction === "maximize" ? -1 : 1;
      t = done.sort((a, b) => sign * (a.objective - b.objective))[0] || e.trials[e.trials.length - 1];
      section.append(el("p", {class: "note"}, "The best trial; click one in the Trials view to see another."));
    }
    const pickBox = el("select", {id: "arch-trial", onchange: (ev) => { S.selected = Number(ev.target.value); render("arch"); }});
    for (const x of e.trials) {
      const o = el("option", {value: String(x.id)}, `trial ${x.number}${x.attempt ? "." + x.attempt : ""} (${x.state.toLowerCase()}, ${fmt(e.settings.metric, x.objective)})`);
      if (x.id === t.id) o.selected = true;
      pickBox.append(o);
    }
    section.append(el("div", {}, pickBox));
    const key = `${S.current}|${t.arch}`;
    const known = e.drawings && e.drawings[t.arch] !== undefined ?
      {svg: e.drawings[t.arch], lines: (e.descriptions && e.descriptions[t.arch]) || []} : S.drawn[key];
    if (!known && BOOT.mode === "live") {
      // the live page asks for one drawing at a time (kept across refreshes): drawings are most
      // of the data's bytes
      section.append(el("p", {class: "note"}, "drawing…"));
      fetch(`api/drawing?e=${S.current}&arch=${encodeURIComponent(t.arch)}`, {cache: "no-store"})
        .then((r) => r.ok ? r.json() : null).then((d) => {
          if (!d) return;
          S.drawn[key] = d;
          if (S.view === "arch") render("arch");
        }).catch(() => {});
      return;
    }
    const drawing = el("div", {id: "arch-drawing", "data-trial": String(t.number)});
    drawing.innerHTML = (known && known.svg) || "<p>no drawing</p>";
    const lines = (known && known.lines) || [];
    const facts = [`trial ${t.number}, ${t.state.toLowerCase()}`, `${e.settings.metric}: ${fmt(e.settings.metric, t.objective)}`,
      ...Object.entries(t.metrics).filter(([k]) => k !== e.settings.metric).slice(0, 10).map(([k, v]) => `${k}: ${fmt(k, v)}`), t.error ? "error: " + t.error : "",
      "", t.summary, "", ...lines].filter((x, i, a) => x !== "" || a[i - 1] !== "");
    section.append(el("div", {class: "arch-panel"}, drawing, el("pre", {}, facts.join("\n"))));
  }

  // ---- what the strategy learnt: policy over updates, or the population ----------------------
  function renderLearning(section, e) {
    section.innerHTML = "";
    const L = e.learning;
    if (!L) {
      section.append(el("div", {class: "empty"}, `The ${e.settings.strategy} strategy keeps no policy or population to show.`));
      return;
    }
    if (L.kind === "error") { section.append(el("div", {class: "empty"}, "This view " + L.reason)); return; }
    if (L.kind === "population") { renderPopulation(section, e, L); return; }
    const U = L.updates;
    if (!U.length) { section.append(el("div", {class: "empty"}, "No controller state stored yet.")); return; }
    const xs = U.map((u) => u.trial === null ? u.update : u.trial);
    section.append(el("p", {class: "note"}, `Per decision, how often the controller picks each choice after each update ` +
      `(estimated from ${L.samples} architectures drawn from each stored policy), its entropy, and the baseline against the rewards. ` +
      `${U.length} stored policies; x is the trial after which each update happened.`));
    const names = L.decisions.map((d) => d.name);
    if (!names.includes(S.policyDecision)) S.policyDecision = names[0];
    const sel = el("select", {id: "policy-decision", onchange: (ev) => { S.policyDecision = ev.target.value; render("learning"); }});
    names.forEach((n) => { const o = el("option", {value: n}, n); if (n === S.policyDecision) o.selected = true; sel.append(o); });
    section.append(el("div", {}, "decision ", sel));
    section.append(el("div", {class: "row"}, el("div", {class: "chart", id: "chart-policy"}), el("div", {class: "chart", id: "chart-policy-map"})));
    section.append(el("div", {class: "row"}, el("div", {class: "chart", id: "chart-entropy"}), el("div", {class: "chart", id: "chart-baseline"})));
    const k = names.indexOf(S.policyDecision), choices = L.decisions[k].choices;
    plot("chart-policy", choices.map((c, j) => ({type: "scatter", mode: "lines+markers", name: c, x: xs,
      y: U.map((u) => u.probabilities[k][j]), line: {color: PALETTE[j % PALETTE.length]}})),
      {title: `P(${S.policyDecision} = choice) over updates`, xaxis: {title: {text: "trial"}}, yaxis: {title: {text: "probability"}, range: [0, 1]}});
    const last = U[U.length - 1];
    const favourite = names.map((_, i) => last.probabilities[i].indexOf(Math.max(...last.probabilities[i])));
    plot("chart-policy-map", [{type: "heatmap", x: xs, y: names.map((n, i) => `${n} = ${L.decisions[i].choices[favourite[i]]}`),
      z: names.map((_, i) => U.map((u) => u.probabilities[i][favourite[i]])), zmin: 0, zmax: 1, colorscale: "Viridis",
      colorbar: {title: {text: "P"}}}],
      {title: "every decision: probability of its final favourite", height: Math.max(360, 22 * names.length + 120),
       margin: {l: 170, r: 20, t: 40, b: 50}, yaxis: {autorange: "reversed"}});
    plot("chart-entropy", [{type: "scatter", mode: "lines+markers", name: "entropy", x: xs, y: U.map((u) => u.entropy), line: {color: "#009E73"}}],
      {title: "policy entropy (nats, whole architecture)", xaxis: {title: {text: "trial"}}, showlegend: false});
    const done = e.trials.filter((t) => t.reward !== null);
    plot("chart-baseline", [
      {type: "scatter", mode: "markers", name: "reward", x: done.map((t) => t.number), y: done.map((t) => t.reward), marker: {color: "#999", size: 5}},
      {type: "scatter", mode: "lines", name: "baseline", x: xs, y: U.map((u) => u.baseline), line: {shape: "hv", color: "#D55E00", width: 2}}],
      {title: "rewards and the moving-average baseline", xaxis: {title: {text: "trial"}}});
  }

  function renderPopulation(section, e, L) {
    const s = L.series, xs = s.map((p) => p.trial);
    section.append(el("p", {class: "note"}, `Regularized evolution keeps the ${L.population_size} most recently evaluated architectures. ` +
      "Age: trials since a member was evaluated. Diversity: the mean share of decisions on which two members differ."));
    section.append(el("div", {class: "row"}, el("div", {class: "chart", id: "chart-age"}), el("div", {class: "chart", id: "chart-diversity"})));
    plot("chart-age", [{type: "scatter", mode: "lines", name: "mean age", x: xs, y: s.map((p) => p.mean_age), line: {color: "#0072B2"}},
                       {type: "scatter", mode: "lines", name: "age of the best member", x: xs, y: s.map((p) => p.best_age), line: {color: "#D55E00"}}],
      {title: "population age", xaxis: {title: {text: "trial"}}, yaxis: {title: {text: "trials"}}});
    plot("chart-diversity", [{type: "scatter", mode: "lines", name: "diversity", x: xs, y: s.map((p) => p.diversity), line: {color: "#009E73"}},
                             {type: "scatter", mode: "lines", name: "distinct architectures", x: xs, y: s.map((p) => p.distinct), yaxis: "y2", line: {color: "#CC79A7"}}],
      {title: "population diversity", xaxis: {title: {text: "trial"}}, yaxis: {title: {text: "share of decisions"}, range: [0, 1]},
       yaxis2: {title: {text: "distinct"}, overlaying: "y", side: "right"}, margin: {l: 60, r: 60, t: 40, b: 50}});
  }

  // ---- decision importance -------------------------------------------------------------------
  function renderImportance(section, e) {
    section.innerHTML = "";
    const I = e.importance;
    if (!I || I.reason) { section.append(el("div", {class: "empty"}, "Decision importance " + (I ? I.reason : "is not computed yet") + ".")); return; }
    section.append(el("p", {class: "note"}, `How much each decision explains ${e.settings.metric}, over ${I.trials} completed trials: ${I.method}.`));
    section.append(el("div", {class: "chart", id: "chart-importance"}));
    const n = Math.min(I.decisions.length, 30);
    plot("chart-importance", [{type: "bar", orientation: "h", x: I.values.slice(0, n).reverse(), y: I.decisions.slice(0, n).reverse(),
                               marker: {color: "#0072B2"}}],
         {title: "decision importance", height: 120 + 22 * n, margin: {l: 140, r: 20, t: 40, b: 40}, xaxis: {title: {text: "share"}}});
  }

  // ---- retrain, final selection and export ----------------------------------------------------
  function renderFinal(section, e) {
    section.innerHTML = "";
    const ev = e.final.evaluations;
    if (!ev.length) section.append(el("div", {class: "empty", id: "final-none"},
      e.settings.no_retrain ? `Nothing to retrain: ${e.settings.no_retrain}.` : "No retrain or final selection yet: run `nasforge retrain`."));
    const kinds = Array.from(new Set(ev.map((x) => x.kind)));
    for (const kind of kinds) {
      const rows = ev.filter((x) => x.kind === kind);
      const keys = Array.from(new Set(rows.flatMap((r) => Object.keys(r.metrics)))).slice(0, 10);
      const head = el("tr", {}, el("th", {}, "trial"), ...keys.map((k) => el("th", {}, k)));
      const table = el("table", {class: "plain"}, head);
      rows.forEach((r) => table.append(el("tr", {}, el("td", {}, r.trial === null ? "-" : r.trial),
        ...keys.map((k) => el("td", {}, fmt(k, r.metrics[k] === undefined ? null : r.metrics[k]))))));
      section.append(el("h3", {}, kind), table);
    }
    if (e.settings.no_retrain && !e.final.export.length) return;  // nothing to export either, said above
    section.append(el("h3", {}, "export"));
    if (!e.final.export.length) section.append(el("p", {class: "note"}, "No export yet: run `nasforge export`."));
    else {
      const table = el("table", {class: "plain"}, el("tr", {}, el("th", {}, "file"), el("th", {}, "bytes")));
      e.final.export.forEach((f) => table.append(el("tr", {}, el("td", {}, f.path), el("td", {}, f.bytes))));
      section.append(table);
    }
  }

  // ---- the comparison of `nasforge benchmark` -----------------------------------------------------
  function renderBenchmark(section) {
    section.innerHTML = "";
    const B = S.benchmark;
    if (!B) return;
    section.append(el("p", {class: "note"}, B.note));
    B.panels.forEach((panel, i) => {
      const id = "chart-benchmark-" + i;
      section.append(el("div", {class: "chart", id}));
      const traces = [];
      panel.curves.forEach((c, j) => {
        const colour = PALETTE[j % PALETTE.length];
        if (!c.x.length) return;
        traces.push({type: "scatter", mode: "lines", x: c.x.concat(c.x.slice().reverse()),
                     y: c.low.concat(c.high.slice().reverse()), fill: "toself", fillcolor: colour + "33",
                     line: {width: 0}, hoverinfo: "skip", showlegend: false, legendgroup: c.label});
        traces.push({type: "scatter", mode: "lines", name: c.label, x: c.x, y: c.mean, legendgroup: c.label,
                     line: {color: colour, width: 2, dash: ["solid", "dash", "dot", "dashdot"][j % 4]}});
      });
      const lay = {title: panel.title, xaxis: {title: {text: panel.xlabel}, type: "log"}, yaxis: {title: {text: panel.ylabel}}};
      if (panel.failed.length) lay.annotations = [{text: "every query failed: " + panel.failed.join(", "), xref: "paper", yref: "paper",
                                                     x: 0.5, y: 1.0, showarrow: false, font: {color: "#D55E00"}}];
      plot(id, traces, lay);
    });
  }

  // ---- data ----------------------------------------------------------------------------------
  function setData(experiments) {
    S.experiments = experiments;
    S.loads = (S.loads || 0) + 1;
    if (S.current >= experiments.length) S.current = 0;
    if (!experiments.length && S.benchmark) S.view = "benchmark";  // a report of a comparison alone
    header();
    markAllStale();
    show(S.view);
  }

  // Live polling asks only the cheap change marker (api/version); while it stays the same the wait
  // doubles, up to 8 times the interval, and a hidden tab asks nothing until it is shown again.
  let quiet = 0, timer = null, busy = false;
  async function poll() {
    timer = null;
    if (document.hidden || busy) return;  // resumed by visibilitychange
    busy = true;
    S.polls = (S.polls || 0) + 1;
    try {
      const r = await fetch("api/version", {cache: "no-store"});
      if (r.ok) {
        const v = await r.text();
        quiet = v === S.version ? Math.min(quiet + 1, 3) : 0;
        if (v !== S.version) {
          const d = await fetch("api/data", {cache: "no-store"});
          if (d.ok) { S.version = v; setData((await d.json()).experiments); }
        }
      }
    } catch (err) {
      $("#status").textContent = "dashboard server not reachable; retrying";
    }
    busy = false;
    if (!document.hidden) timer = setTimeout(poll, (BOOT.interval || 2000) * 2 ** quiet);
  }
  document.addEventListener("visibilitychange", () => {
    if (BOOT.mode !== "live" || document.hidden || timer !== null || busy) return;
    quiet = 0;
    poll();
  });

  async function gunzipText(id) {
    const b64 = document.getElementById(id).textContent.trim();
    const bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }

  async function start() {
    frame();
    if (BOOT.mode === "live") { poll(); return; }
    if (!window.Plotly) {
      const s = document.createElement("script");
      s.textContent = await gunzipText("plotly-gz");
      document.head.append(s);
    }
    const data = JSON.parse(await gunzipText("data-gz"));
    S.benchmark = data.benchmark || null;
    frame();
    setData(data.experiments);
  }
  window.NF_show = show;
  document.addEventListener("DOMContentLoaded", () => { start().catch((err) => {
    document.body.append(el("pre", {class: "empty"}, "This page could not be shown: " + err));
    throw err;
  }); });
})();
