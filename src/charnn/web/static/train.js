/* The Train page: the served runs (polled), the selected run's train and validation curves read
 * incrementally from /api/runs/{id}/metrics (polled once a second), and its epoch samples. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $("status"), chart = $("chart");
  var selected = null, rows = [], offset = 0, samplesSeen = -1, busy = false;

  function redraw() {
    var x = $("xaxis").value;
    var train = rows.filter(function (r) { return r.train_loss !== undefined; })
                    .map(function (r) { return [r[x], r.train_loss]; });
    var val = rows.filter(function (r) { return r.val_loss !== undefined && r.val_loss !== null; })
                  .map(function (r) { return [r[x], r.val_loss]; });
    CharnnChart.draw(chart, [{ points: train, color: "#1f77b4" }, { points: val, color: "#e8710a", dots: true }],
                     { xlabel: x === "step" ? "optimizer step" : "wall time (s)", ylabel: "loss (nats/char)" });
    chart.dataset.points = String(train.length);
    chart.dataset.valPoints = String(val.length);
    var last = rows[rows.length - 1];
    if (last) Charnn.status(statusEl, "step " + last.step + ", epoch " + last.epoch + ", train " +
                            last.train_loss.toFixed(4) + (val.length ? ", last val " + val[val.length - 1][1].toFixed(4) : ""));
  }

  function select(id) {
    selected = id; rows = []; offset = 0; samplesSeen = -1;
    $("run-name").textContent = id;
    $("samples").textContent = "";
    Array.prototype.forEach.call($("runs").children, function (li) { li.classList.toggle("selected", li.dataset.id === id); });
    history.replaceState(null, "", "?run=" + encodeURIComponent(id));
    redraw();
    poll();
  }

  async function listRuns() {
    try {
      var runs = await Charnn.json("/api/runs");
      var ul = $("runs");
      ul.textContent = "";
      runs.forEach(function (r) {
        var li = document.createElement("li");
        li.dataset.id = r.id;
        li.textContent = r.id;
        li.classList.toggle("training", r.training);
        li.classList.toggle("selected", r.id === selected);
        li.addEventListener("click", function () { select(r.id); });
        ul.appendChild(li);
      });
      if (selected === null && runs.length) {
        var want = new URLSearchParams(location.search).get("run");
        var pick = runs.filter(function (r) { return r.id === want; })[0] ||
                   runs.filter(function (r) { return r.training; })[0] || runs[0];
        select(pick.id);
      }
    } catch (e) { Charnn.status(statusEl, e.message, true); }
  }

  async function poll() {
    if (selected === null || busy) return;
    busy = true;
    var id = selected;
    try {
      for (;;) {     // a long file comes in several answers; a growing one is drawn as it stands
        var m = await Charnn.json("/api/runs/" + encodeURIComponent(id) + "/metrics?offset=" + offset);
        if (id !== selected) return;
        if (m.reset) rows = [];
        rows = rows.concat(m.rows);
        var more = m.more === true && m.offset !== offset;
        offset = m.offset;
        if (!more) break;
      }
      redraw();
      var samples = await Charnn.json("/api/runs/" + encodeURIComponent(id) + "/samples");
      if (id === selected && samples.length !== samplesSeen) {
        samplesSeen = samples.length;
        var box = $("samples");
        box.textContent = "";
        samples.slice().reverse().forEach(function (s) {
          var d = document.createElement("div"); d.className = "sample";
          var h = document.createElement("div"); h.className = "head"; h.textContent = s.head;
          var t = document.createElement("div"); t.className = "mono"; t.textContent = s.text;
          d.appendChild(h); d.appendChild(t); box.appendChild(d);
        });
      }
    } catch (e) { Charnn.status(statusEl, e.message, true); }
    finally { busy = false; }
  }

  $("xaxis").addEventListener("change", redraw);
  listRuns();
  setInterval(listRuns, 3000);
  setInterval(poll, 1000);
})();
