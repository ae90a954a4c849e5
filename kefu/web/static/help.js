// Help-center search: suggestions as you type. Plain JS, no build step; the form works
// without it (it submits to /help/search).
(function () {
  "use strict";
  var form = document.querySelector("form[data-typeahead]");
  if (!form) return;
  var input = form.querySelector("input[name=q]");
  var list = form.querySelector(".suggestions");
  var lang = document.documentElement.lang === "en" ? "en" : "zh-CN";
  var timer = null;
  var seq = 0;

  function clear() { list.innerHTML = ""; list.hidden = true; }

  function show(results, mine) {
    if (mine !== seq) return; // an answer to an older keystroke
    list.innerHTML = "";
    results.forEach(function (r) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      var a = document.createElement("a");
      a.href = r.url;
      a.textContent = r.title; // text, never HTML
      li.appendChild(a);
      list.appendChild(li);
    });
    list.hidden = results.length === 0;
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    var q = input.value.trim();
    if (!q) { clear(); return; }
    timer = setTimeout(function () {
      var mine = ++seq;
      fetch("/api/v1/helpcenter/search?suggest=1&limit=6&locale=" + lang + "&q=" + encodeURIComponent(q))
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (data) { show(data.results || [], mine); })
        .catch(clear);
    }, 120);
  });
  input.addEventListener("keydown", function (e) { if (e.key === "Escape") clear(); });
})();
