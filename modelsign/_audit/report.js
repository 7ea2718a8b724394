"use strict";
(function () {
  var body = document.querySelector("#models tbody");
  if (!body) { return; }
  document.documentElement.classList.remove("nojs");
  var rows = Array.prototype.slice.call(body.rows);
  var search = document.getElementById("q");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=verdict]"));
  var heads = Array.prototype.slice.call(document.querySelectorAll("#models th[data-k]"));
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var query = new URLSearchParams(location.search);
  var sort = query.get("sort") || "verdict";
  var dir = query.get("dir") === "desc" ? -1 : 1;
  if (query.has("q")) { search.value = query.get("q"); }
  if (query.has("verdict")) {
    var want = query.get("verdict").split(",");
    boxes.forEach(function (b) { b.checked = b.defaultChecked = want.indexOf(b.value) >= 0; });
  }
  function value(row, key) {
    var cell = row.querySelector('td[data-k="' + key + '"]');
    if (!cell) { return ""; }
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
  }
  function keyed(key) {
    var out = new Map();
    rows.forEach(function (row) { out.set(row, value(row, key)); });
    return out;
  }
  function compare(keys, names) {
    return function (a, b) {
      var x = keys.get(a), y = keys.get(b), nx = Number(x), ny = Number(y), c;
      if (x !== "" && y !== "" && isFinite(nx) && isFinite(ny)) { c = nx - ny; }
      else { c = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"}); }
      if (!c) { c = names.get(a).localeCompare(names.get(b)); }
      return c * dir || Number(a.getAttribute("data-i")) - Number(b.getAttribute("data-i"));
    };
  }
  function render() {
    var needle = search.value.trim().toLowerCase();
    var allowed = boxes.filter(function (b) { return b.checked; })
      .map(function (b) { return b.value; });
    rows.sort(compare(keyed(sort), keyed("model")));
    var count = 0;
    rows.forEach(function (row) {
      var ok = allowed.indexOf(row.getAttribute("data-verdict")) >= 0 &&
        (!needle || row.textContent.toLowerCase().indexOf(needle) >= 0);
      row.hidden = !ok;
      if (ok) { count += 1; }
      body.appendChild(row);
    });
    shown.textContent = count + " of " + rows.length + " shown";
    empty.hidden = count !== 0;
    heads.forEach(function (h) {
      var key = h.getAttribute("data-k");
      h.setAttribute("aria-sort", key === sort ? (dir > 0 ? "ascending" : "descending") : "none");
    });
    var next = new URLSearchParams();
    if (sort !== "verdict" || dir < 0) { next.set("sort", sort); }
    if (dir < 0) { next.set("dir", "desc"); }
    if (needle) { next.set("q", search.value.trim()); }
    if (allowed.length !== boxes.length) { next.set("verdict", allowed.join(",")); }
    var text = next.toString();
    try { history.replaceState(null, "", (text ? "?" + text : location.pathname) + location.hash); }
    catch (e) { /* some viewers forbid it: the view still applies */ }
  }
  heads.forEach(function (h) {
    h.querySelector("button").addEventListener("click", function () {
      var key = h.getAttribute("data-k");
      if (key === sort) { dir = -dir; } else { sort = key; dir = 1; }
      render();
    });
  });
  search.addEventListener("input", render);
  boxes.forEach(function (b) { b.addEventListener("change", render); });
  Array.prototype.forEach.call(document.querySelectorAll("a[data-only]"), function (a) {
    a.addEventListener("click", function (event) {
      event.preventDefault();
      var only = a.getAttribute("data-only");
      boxes.forEach(function (b) { b.checked = !only || b.value === only; });
      render();
      document.getElementById("models").scrollIntoView();
    });
  });
  render();
})();
