// agent-sre status page: charts drawn as inline SVG (no library). Every text is a text node.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    }
    if (text !== undefined) el.appendChild(document.createTextNode(String(text)));
    return el;
  }

  function finite(x) {
    return typeof x === "number" && Number.isFinite(x);
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    if (span > 2 * 86400) {
      return d.toISOString().slice(5, 10);
    }
    if (span < 3600) return d.toISOString().slice(11, 19);
    return d.toISOString().slice(11, 16);
  }

  // A line chart. opts: {series: [{points: [[x, y]], cls, step, dash}], xMin, xMax, yMin, yMax,
  // hlines: [{y, label, cls}], vlines: [{x, label, cls}], yFormat, height, label, bands}
  function lineChart(opts) {
    const W = opts.width || 640;
    const H = opts.height || 220;
    const m = { l: 56, r: 12, t: 14, b: 26 };
    const all = [];
    for (const s of opts.series) for (const p of s.points) if (finite(p[0]) && finite(p[1])) all.push(p);
    let xMin = finite(opts.xMin) ? opts.xMin : Math.min(...all.map((p) => p[0]));
    let xMax = finite(opts.xMax) ? opts.xMax : Math.max(...all.map((p) => p[0]));
    let yMin = finite(opts.yMin) ? opts.yMin : Math.min(0, ...all.map((p) => p[1]));
    let yMax = finite(opts.yMax) ? opts.yMax : Math.max(...all.map((p) => p[1]));
    for (const h of opts.hlines || []) {
      if (finite(h.y)) {
        yMin = Math.min(yMin, h.y);
        yMax = Math.max(yMax, h.y);
      }
    }
    if (!finite(xMin) || !finite(xMax)) {
      xMin = 0;
      xMax = 1;
    }
    if (xMax <= xMin) xMax = xMin + 1;
    if (!finite(yMax)) yMax = 1;
    if (!finite(yMin)) yMin = 0;
    if (yMax <= yMin) yMax = yMin + 1;
    const pad = (yMax - yMin) * 0.05;
    if (!finite(opts.yMax)) yMax += pad;
    if (!finite(opts.yMin) && yMin < 0) yMin -= pad;
    const X = (x) => m.l + ((x - xMin) / (xMax - xMin)) * (W - m.l - m.r);
    const Y = (y) => m.t + (1 - (y - yMin) / (yMax - yMin)) * (H - m.t - m.b);
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`,
      class: "chart " + (opts.cls || ""),
      role: "img",
      "aria-label": opts.label || "chart",
    });
    if (opts.label) root.appendChild(svg("title", {}, opts.label));
    const fmt = opts.yFormat || ((v) => v.toFixed(2));
    // grid and y axis labels
    for (let i = 0; i <= 4; i++) {
      const v = yMin + ((yMax - yMin) * i) / 4;
      root.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "grid" }));
      root.appendChild(svg("text", { x: m.l - 6, y: Y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)));
    }
    const span = xMax - xMin;
    for (let i = 0; i <= 4; i++) {
      const v = xMin + (span * i) / 4;
      root.appendChild(
        svg("text", { x: X(v), y: H - 8, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
          opts.xFormat ? opts.xFormat(v) : timeLabel(v, span)),
      );
    }
    for (const h of opts.hlines || []) {
      if (!finite(h.y)) continue;
      root.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: Y(h.y), y2: Y(h.y), class: "hline " + (h.cls || "") }));
      if (h.label) root.appendChild(svg("text", { x: W - m.r - 4, y: Y(h.y) - 4, class: "hlabel", "text-anchor": "end" }, h.label));
    }
    for (const v of opts.vlines || []) {
      if (!finite(v.x)) continue;
      root.appendChild(svg("line", { x1: X(v.x), x2: X(v.x), y1: m.t, y2: H - m.b, class: "vline " + (v.cls || "") }));
      if (v.label) root.appendChild(svg("text", { x: X(v.x) + 3, y: m.t + 10, class: "hlabel" }, v.label));
    }
    for (const s of opts.series) {
      const pts = s.points.filter((p) => finite(p[0]) && finite(p[1]));
      if (!pts.length) continue;
      let d = "";
      pts.forEach((p, i) => {
        if (i === 0) d += `M${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`;
        else if (s.step) d += `H${X(p[0]).toFixed(1)}V${Y(p[1]).toFixed(1)}`;
        else d += `L${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`;
      });
      const path = svg("path", { d, class: "series " + (s.cls || ""), fill: "none" });
      if (s.dash) path.setAttribute("stroke-dasharray", "5 4");
      if (s.name) path.appendChild(svg("title", {}, s.name));
      root.appendChild(path);
      const last = pts[pts.length - 1];
      root.appendChild(svg("circle", { cx: X(last[0]), cy: Y(last[1]), r: 3, class: "dot " + (s.cls || "") }));
    }
    return root;
  }

  // A horizontal bar: value of max, with optional marks (thresholds) at given values.
  function bar(value, max, opts) {
    opts = opts || {};
    const W = opts.width || 160;
    const H = opts.height || 12;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "bar " + (opts.cls || ""), width: W, height: H, role: "img",
      "aria-label": opts.label || "" });
    if (opts.label) root.appendChild(svg("title", {}, opts.label));
    root.appendChild(svg("rect", { x: 0, y: 0, width: W, height: H, rx: 3, class: "track" }));
    const ratio = finite(value) && finite(max) && max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
    root.appendChild(svg("rect", { x: 0, y: 0, width: (W * ratio).toFixed(1), height: H, rx: 3, class: "fill " + (opts.fill || "") }));
    for (const mark of opts.marks || []) {
      if (!finite(mark) || max <= 0) continue;
      const x = Math.max(0, Math.min(W, (W * mark) / max));
      root.appendChild(svg("line", { x1: x, x2: x, y1: 0, y2: H, class: "mark" }));
    }
    return root;
  }

  // Bars side by side: [{label, value, max, cls}] as a small column chart.
  function columns(items, opts) {
    opts = opts || {};
    const W = opts.width || 360;
    const H = opts.height || 140;
    const m = { l: 8, r: 8, t: 18, b: 22 };
    const max = Math.max(opts.max || 0, ...items.map((i) => (finite(i.value) ? i.value : 0)), 1e-9);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart columns", role: "img", "aria-label": opts.label || "" });
    const w = (W - m.l - m.r) / Math.max(1, items.length);
    items.forEach((item, i) => {
      const v = finite(item.value) ? item.value : 0;
      const h = ((H - m.t - m.b) * v) / max;
      const x = m.l + i * w + w * 0.15;
      root.appendChild(svg("rect", { x, y: H - m.b - h, width: w * 0.7, height: Math.max(h, 0), class: "col " + (item.cls || "") }));
      root.appendChild(svg("text", { x: x + w * 0.35, y: H - m.b - h - 4, class: "axis", "text-anchor": "middle" },
        item.text !== undefined ? item.text : String(v)));
      root.appendChild(svg("text", { x: x + w * 0.35, y: H - 6, class: "axis", "text-anchor": "middle" }, item.label));
    });
    if (finite(opts.line)) {
      const y = H - m.b - ((H - m.t - m.b) * opts.line) / max;
      root.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: y, y2: y, class: "hline" }));
    }
    return root;
  }

  window.Charts = { lineChart, bar, columns };
})();
