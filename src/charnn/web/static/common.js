/* Shared by the pages: JSON requests with one-line errors, and the model picker. */
var Charnn = (function () {
  "use strict";
  /* fetch + JSON; a 4xx/5xx answer throws an Error whose message is the server's one-line detail. */
  async function json(url, body) {
    var opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(body) };
    var res = await fetch(url, opts);
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error((data && data.detail) || (res.status + " " + res.statusText));
    return data;
  }
  /* Fill a <select> with the served models; the page's ?model= chooses the initial one. */
  async function fillModels(select) {
    var models = await json("/api/models");
    select.textContent = "";
    models.forEach(function (m) {
      var o = document.createElement("option");
      o.value = m.id;
      var c = m.config;
      o.textContent = m.id + (c ? " (" + c.cell + " " + c.layers + "\u00d7" + c.hidden_size + ")" : "");
      select.appendChild(o);
    });
    var want = new URLSearchParams(location.search).get("model");
    if (want && models.some(function (m) { return m.id === want; })) select.value = want;
    return models;
  }
  function status(el, text, isError) {
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }
  return { json: json, fillModels: fillModels, status: status };
})();
