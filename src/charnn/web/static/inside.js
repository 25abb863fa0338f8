/* The Inside page: POST /api/inside, then draw the answer with the renderer `charnn inspect` embeds. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $("status");
  $("text").addEventListener("input", function () { $("source-text").checked = true; });

  async function analyse() {
    var body = { model: $("model").value };
    if ($("source-text").checked) body.text = $("text").value;
    else { body.split = "val"; body.start = Number($("start").value || 0); body.length = Number($("slice-length").value || 2000); }
    Charnn.status(statusEl, "reading\u2026");
    try {
      var data = await Charnn.json("/api/inside", body);
      CharnnInside.render($("inside"), data);
      Charnn.status(statusEl, data.chars + " characters read");
    } catch (e) {
      Charnn.status(statusEl, e.message, true);
    }
  }
  $("analyse").addEventListener("click", analyse);
  Charnn.fillModels($("model")).catch(function (e) { Charnn.status(statusEl, e.message, true); });
})();
