/* The Write page: stream a continuation from POST /api/generate (server-sent events over fetch),
 * shade each character by its probability, show the top 5 on hover, continue from a candidate. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var output = $("output"), tip = $("tooltip"), statusEl = $("status");
  var records = [], prompt = "", controller = null;

  $("temperature").addEventListener("input", function () {
    $("temperature-value").textContent = Number(this.value).toFixed(2);
  });

  function shade(p) {            // probability 1 -> white, 0 -> deep orange
    var a = Math.max(0, Math.min(1, 1 - p)) * 0.85;
    return "rgba(240, 120, 30, " + a.toFixed(3) + ")";
  }
  function visible(ch) { return ch === "\n" ? "\u23ce" : ch === " " ? "\u2423" : ch; }

  function addChar(rec) {
    var i = records.length;
    records.push(rec);
    var s = document.createElement("span");
    s.className = "gen";
    s.dataset.index = String(i);
    s.textContent = rec.char;
    s.style.background = shade(rec.p);
    s.title = "";
    output.appendChild(s);
  }

  function showTop(span) {
    var i = Number(span.dataset.index), rec = records[i];
    tip.textContent = "";
    var table = document.createElement("table");
    var head = document.createElement("tr");
    var th = document.createElement("td");
    th.colSpan = 3;
    th.textContent = "drawn " + JSON.stringify(rec.char) + " p = " + rec.p.toFixed(4) + "; top 5:";
    head.appendChild(th);
    table.appendChild(head);
    rec.top.forEach(function (cand) {
      var tr = document.createElement("tr");
      tr.className = "candidate" + (cand[0] === rec.char ? " drawn" : "");
      tr.dataset.char = cand[0];
      var c = document.createElement("td"); c.textContent = visible(cand[0]);
      var p = document.createElement("td"); p.textContent = (100 * cand[1]).toFixed(1) + "%";
      var b = document.createElement("td");
      var bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (60 * cand[1]).toFixed(1) + "px";
      b.appendChild(bar);
      tr.appendChild(c); tr.appendChild(p); tr.appendChild(b);
      tr.addEventListener("click", function (ev) { ev.stopPropagation(); continueWith(i, cand[0]); });
      table.appendChild(tr);
    });
    tip.appendChild(table);
    var r = span.getBoundingClientRect();
    tip.style.left = (window.scrollX + r.left) + "px";
    tip.style.top = (window.scrollY + r.bottom + 4) + "px";
    tip.hidden = false;
  }

  output.addEventListener("mouseover", function (ev) {
    if (ev.target.classList && ev.target.classList.contains("gen")) showTop(ev.target);
  });
  output.addEventListener("click", function (ev) {       // a tap on a touch screen
    if (ev.target.classList && ev.target.classList.contains("gen")) { ev.stopPropagation(); showTop(ev.target); }
  });
  document.addEventListener("click", function (ev) { if (!tip.contains(ev.target)) tip.hidden = true; });

  /* Continue from candidate `ch` at position i: the new prompt is everything before i, then ch. */
  function continueWith(i, ch) {
    var text = prompt + records.slice(0, i).map(function (r) { return r.char; }).join("") + ch;
    $("prompt").value = text;
    tip.hidden = true;
    generate();
  }

  function request() {
    var seed = $("seed").value;
    return {
      model: $("model").value, prompt: $("prompt").value, length: Number($("length").value),
      temperature: Number($("temperature").value), top_k: Number($("top-k").value || 0),
      top_p: Number($("top-p").value || 1), seed: seed === "" ? null : Number(seed), stream: true
    };
  }

  async function generate() {
    if (controller) controller.abort();
    controller = new AbortController();
    var body = request();
    prompt = body.prompt;
    records = [];
    output.textContent = "";
    var p = document.createElement("span");
    p.className = "prompt";
    p.textContent = prompt;
    output.appendChild(p);
    Charnn.status(statusEl, "generating\u2026");
    $("stop").disabled = false;
    try {
      var res = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify(body), signal: controller.signal });
      if (!res.ok) {
        var detail = null;
        try { detail = (await res.json()).detail; } catch (e) { detail = res.statusText; }
        throw new Error(detail);
      }
      var reader = res.body.getReader(), decoder = new TextDecoder(), buf = "", seed = null;
      for (;;) {
        var part = await reader.read();
        if (part.done) break;
        buf += decoder.decode(part.value, { stream: true });
        var cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          var ev = parse(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (ev.event === "start") seed = ev.data.seed;
          else if (ev.event === "chars") ev.data.forEach(addChar);
          else if (ev.event === "done") Charnn.status(statusEl, ev.data.chars + " characters, seed " + seed);
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") Charnn.status(statusEl, e.message, true);
      else Charnn.status(statusEl, "stopped after " + records.length + " characters");
    } finally {
      $("stop").disabled = true;
    }
  }
  function parse(block) {
    var ev = { event: "message", data: "" };
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) ev.event = line.slice(7);
      else if (line.indexOf("data: ") === 0) ev.data += line.slice(6);
    });
    ev.data = JSON.parse(ev.data);
    return ev;
  }

  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", function () { if (controller) controller.abort(); });
  Charnn.fillModels($("model")).catch(function (e) { Charnn.status(statusEl, e.message, true); });
})();
