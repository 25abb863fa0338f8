/* The Inside view: draws a "charnn.inside/1" dict (charnn.apps.inside) into a page element.
 *
 *   CharnnInside.render(rootElement, data)
 *
 * Parts: the text coloured by a chosen unit's activation (state kind and unit selectors) or by
 * its surprise; the units table (click a row: the text is coloured by that unit, the feature's
 * characters are underlined, and a heatmap strip shows the unit's activation under the feature);
 * per layer the gate saturation scatter (Karpathy, Johnson & Fei-Fei 2015): each point is one
 * gate unit, x = share of characters with the gate < 0.1, y = share > 0.9.
 * Plain DOM and SVG, no libraries and no network. Text goes in through textContent only.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var GATE_COLORS = { i: "#1f77b4", f: "#d62728", o: "#2ca02c", r: "#9467bd", z: "#ff7f0e" };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  /* Diverging colour for v in [lo, hi]: blue below the middle, red above, white at it. */
  function diverging(v, lo, hi) {
    var mid = (lo + hi) / 2, half = (hi - lo) / 2 || 1;
    var t = Math.max(-1, Math.min(1, (v - mid) / half));
    var a = Math.round(255 * (1 - Math.abs(t)));
    return t >= 0 ? "rgb(255," + a + "," + a + ")" : "rgb(" + a + "," + a + ",255)";
  }
  /* Sequential colour for surprise s (nats) up to smax: white to orange-red. */
  function sequential(s, smax) {
    var t = Math.max(0, Math.min(1, s / smax));
    return "rgb(255," + Math.round(255 - 150 * t) + "," + Math.round(255 - 255 * t) + ")";
  }
  function shown(ch) { return ch === "\n" ? "\u23ce\n" : ch; }
  function quantile(xs, q) {
    var s = xs.slice().sort(function (a, b) { return a - b; });
    return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 1;
  }

  function render(root, data) {
    root.textContent = "";
    root.classList.add("ci-root");
    var m = data.model;
    root.appendChild(el("p", { "class": "ci-meta" },
      m.cell.toUpperCase() + " " + m.layers + "\u00d7" + m.hidden + ", vocabulary " + m.vocab + "; " +
      data.chars + " characters analysed (" + data.shown + " shown), mean surprise " +
      data.mean_surprise.toFixed(4) + " nats/char. Units scored by " + data.score + "."));

    // ---- the coloured text
    root.appendChild(el("h2", {}, "Text"));
    var controls = el("div", { "class": "ci-controls" });
    var view = el("select", { id: "ci-view", "aria-label": "colour by" });
    view.appendChild(el("option", { value: "unit" }, "a unit's activation"));
    view.appendChild(el("option", { value: "surprise" }, "surprise (per-character loss)"));
    var kind = el("select", { id: "ci-kind", "aria-label": "state kind" });
    data.names.forEach(function (n) { kind.appendChild(el("option", { value: n }, n)); });
    var unit = el("input", { id: "ci-unit", type: "number", min: "0", max: String(m.hidden - 1), value: "0",
                             "aria-label": "unit" });
    var legend = el("span", { "class": "ci-note", id: "ci-legend" });
    [["colour by ", view], ["state ", kind], ["unit ", unit]].forEach(function (p) {
      var l = el("label", {}, p[0]); l.appendChild(p[1]); controls.appendChild(l);
    });
    controls.appendChild(legend);
    if (data.initial && data.names.indexOf(data.initial.name) >= 0) {   // the unit to show first
      kind.value = data.initial.name; unit.value = String(data.initial.unit);
    }
    root.appendChild(controls);
    var textBox = el("div", { "class": "ci-text", id: "ci-text" });
    // One span per character: Array.from splits by code point, as Python does, so the arrays line up.
    var spans = [];
    Array.from(data.text).forEach(function (ch) {
      var s = el("span", {}, shown(ch)); spans.push(s); textBox.appendChild(s);
    });
    root.appendChild(textBox);
    var strip = el("canvas", { "class": "ci-strip", id: "ci-strip", width: String(Math.max(1, spans.length)),
                               height: "24", title: "top: the feature; bottom: the unit's activation" });
    root.appendChild(strip);
    var smax = Math.max(1e-6, quantile(data.surprise, 0.99));
    var feature = null;

    function paint() {
      var name = kind.value, j = Math.max(0, Math.min(m.hidden - 1, parseInt(unit.value, 10) || 0));
      var vals = data.states[name][j], rng = data.ranges[name];
      if (!rng) {                            // the cell state: this unit's own scale, ± its largest |c|
        var big = 1e-6;
        for (var q = 0; q < vals.length; q++) big = Math.max(big, Math.abs(vals[q]));
        rng = [-big, big];
      }
      var fvals = feature ? data.features.filter(function (f) { return f.name === feature; })[0].values : null;
      for (var t = 0; t < spans.length; t++) {
        var sp = spans[t];
        if (view.value === "surprise") {
          sp.style.background = sequential(data.surprise[t], smax);
          sp.title = "surprise " + data.surprise[t].toFixed(3) + " nats";
        } else {
          sp.style.background = diverging(vals[t], rng[0], rng[1]);
          sp.title = name + "[" + j + "] = " + vals[t].toFixed(3) + "; surprise " + data.surprise[t].toFixed(3);
        }
        sp.classList.toggle("ci-on", !!(fvals && fvals[t] > 0 && feature !== "line_position"));
      }
      legend.textContent = view.value === "surprise"
        ? "white 0 \u2192 red \u2265 " + smax.toFixed(2) + " nats"
        : "blue " + rng[0].toFixed(2) + " \u2192 white \u2192 red " + rng[1].toFixed(2) +
          (feature ? "; underlined: " + feature : "");
      var ctx = strip.getContext("2d");
      for (var x = 0; x < spans.length; x++) {
        if (fvals) {
          var fmax = feature === "line_position" ? Math.max.apply(null, fvals) || 1 : 1;
          var g = Math.round(255 * (1 - fvals[x] / fmax));
          ctx.fillStyle = "rgb(" + g + "," + g + "," + g + ")";
        } else ctx.fillStyle = "#fff";
        ctx.fillRect(x, 0, 1, 10);
        ctx.fillStyle = diverging(vals[x], rng[0], rng[1]);
        ctx.fillRect(x, 12, 1, 12);
      }
    }
    [view, kind, unit].forEach(function (c) { c.addEventListener("input", paint); c.addEventListener("change", paint); });

    // ---- the units table
    root.appendChild(el("h2", {}, "Units that track features of the text"));
    root.appendChild(el("p", { "class": "ci-note" }, "For each feature, the unit (any layer and state kind) " +
      "whose activation correlates best with it over the whole text. Click a row to colour the text by that unit."));
    var table = el("table", { "class": "ci-table", id: "ci-units" });
    var head = el("tr");
    ["feature", "best unit", "r", "score |r|", "runners-up"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    var tbody = el("tbody");
    data.units.forEach(function (u) {
      var tr = el("tr", { "data-feature": u.feature });
      tr.appendChild(el("td", {}, u.description));
      if (u.name === null) {
        tr.appendChild(el("td", { colspan: "4" }, "constant on this text"));
      } else {
        tr.appendChild(el("td", {}, u.name + " #" + u.unit));
        tr.appendChild(el("td", {}, u.r.toFixed(3)));
        tr.appendChild(el("td", {}, u.score.toFixed(3)));
        tr.appendChild(el("td", {}, u.next.map(function (x) {
          return x.name + " #" + x.unit + " (" + x.score.toFixed(2) + ")"; }).join(", ")));
        tr.addEventListener("click", function () {
          Array.prototype.forEach.call(tbody.children, function (r) { r.classList.remove("ci-selected"); });
          tr.classList.add("ci-selected");
          feature = u.feature; view.value = "unit"; kind.value = u.name; unit.value = String(u.unit);
          paint();
          textBox.scrollIntoView({ block: "nearest" });
        });
      }
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    root.appendChild(table);

    // ---- gate saturation
    root.appendChild(el("h2", {}, "Gate saturation"));
    if (!data.saturation.length) {
      root.appendChild(el("p", { "class": "ci-note" }, "The vanilla RNN has no gates."));
    } else {
      root.appendChild(el("p", { "class": "ci-note" }, "One point per gate unit: x = share of characters at which " +
        "the gate is below 0.1 (left-saturated), y = share above 0.9 (right-saturated)."));
      var box = el("div", { "class": "ci-sat", id: "ci-saturation" });
      data.saturation.forEach(function (layer) { box.appendChild(scatter(layer)); });
      root.appendChild(box);
    }
    paint();
  }

  function scatter(layer) {
    var W = 240, P = 34, S = W - P - 10;
    var fig = el("figure");
    var g = svg("svg", { width: String(W), height: String(W), viewBox: "0 0 " + W + " " + W, role: "img" });
    g.appendChild(svg("rect", { x: P, y: 10, width: S, height: S, fill: "#fafafa", stroke: "#999" }));
    g.appendChild(svg("line", { x1: P, y1: 10, x2: P + S, y2: 10 + S, stroke: "#ddd" }));
    [0, 0.5, 1].forEach(function (v) {
      var tx = svg("text", { x: P + v * S, y: W - 8, "font-size": "10", "text-anchor": "middle" });
      tx.textContent = String(v); g.appendChild(tx);
      var ty = svg("text", { x: P - 4, y: 14 + (1 - v) * S, "font-size": "10", "text-anchor": "end" });
      ty.textContent = String(v); g.appendChild(ty);
    });
    var legend = [];
    Object.keys(layer.gates).forEach(function (k) {
      var d = layer.gates[k], col = GATE_COLORS[k] || "#333";
      legend.push(k);
      for (var j = 0; j < d.left.length; j++) {
        var c = svg("circle", { cx: (P + d.left[j] * S).toFixed(1), cy: (10 + (1 - d.right[j]) * S).toFixed(1),
                                r: "2.2", fill: col, "fill-opacity": "0.6", "class": "ci-gate ci-gate-" + k });
        var tip = svg("title"); tip.textContent = k + " #" + j + ": <0.1 " + d.left[j] + ", >0.9 " + d.right[j];
        c.appendChild(tip); g.appendChild(c);
      }
    });
    fig.appendChild(g);
    var cap = el("figcaption");
    cap.appendChild(document.createTextNode("layer " + layer.layer + ": "));
    legend.forEach(function (k) {
      var sw = el("span", {}, "\u25cf " + k + " ");
      sw.style.color = GATE_COLORS[k] || "#333";
      cap.appendChild(sw);
    });
    fig.appendChild(cap);
    return fig;
  }

  window.CharnnInside = { render: render };
})();
