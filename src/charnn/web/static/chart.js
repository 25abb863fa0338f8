/* A small line chart on a canvas: loss curves against step or wall time. No libraries.
 *
 *   CharnnChart.draw(canvas, [{points: [[x, y], ...], color, dots}], {xlabel, ylabel})
 */
var CharnnChart = (function () {
  "use strict";
  function ticks(lo, hi, n) {       // about n round tick values covering [lo, hi]
    var span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= n) { step *= m; return true; } return false; });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function draw(canvas, series, labels) {
    var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    var L = 56, R = 14, T = 12, B = 40;
    ctx.clearRect(0, 0, W, H);
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { if (isFinite(p[1])) all.push(p); }); });
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#666";
    if (!all.length) { ctx.fillText("no metrics yet", L + 10, T + 20); return; }
    var x0 = Math.min.apply(null, all.map(function (p) { return p[0]; }));
    var x1 = Math.max.apply(null, all.map(function (p) { return p[0]; }));
    var y0 = Math.min.apply(null, all.map(function (p) { return p[1]; }));
    var y1 = Math.max.apply(null, all.map(function (p) { return p[1]; }));
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    var pad = 0.05 * (y1 - y0); y0 -= pad; y1 += pad;
    var X = function (x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    var Y = function (y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
    ctx.strokeStyle = "#eee"; ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ticks(y0, y1, 6).forEach(function (v) {
      ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.stroke();
      ctx.fillText(String(v), L - 6, Y(v) + 4);
    });
    ctx.textAlign = "center";
    ticks(x0, x1, 8).forEach(function (v) {
      ctx.beginPath(); ctx.moveTo(X(v), T); ctx.lineTo(X(v), H - B); ctx.stroke();
      ctx.fillText(String(v), X(v), H - B + 16);
    });
    ctx.strokeStyle = "#999"; ctx.strokeRect(L, T, W - L - R, H - T - B);
    ctx.fillText(labels.xlabel || "", (L + W - R) / 2, H - 6);
    ctx.save(); ctx.translate(14, (T + H - B) / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText(labels.ylabel || "", 0, 0); ctx.restore();
    series.forEach(function (s) {
      ctx.strokeStyle = ctx.fillStyle = s.color; ctx.lineWidth = 1.6;
      ctx.beginPath();
      s.points.forEach(function (p, i) { if (i) ctx.lineTo(X(p[0]), Y(p[1])); else ctx.moveTo(X(p[0]), Y(p[1])); });
      ctx.stroke();
      if (s.dots) s.points.forEach(function (p) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 3, 0, 2 * Math.PI); ctx.fill(); });
    });
  }
  return { draw: draw };
})();
