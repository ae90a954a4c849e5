// Help-center search: suggestions as you type. Plain JS, no build step; the forms work
// without it (the search box submits to /help/search).
(function () {
  "use strict";
  var lang = document.documentElement.lang === "en" ? "en" : "zh-CN";
  // The search box (a form of its own) and the contact form's subject (inside the form
  // that files a ticket: there an article opens in a new tab, so what was typed stays).
  Array.prototype.forEach.call(document.querySelectorAll("[data-typeahead]"), attach);

  function attach(box) {
    var input = box.querySelector("input");
    var list = box.querySelector(".suggestions");
    if (!input || !list) return;
    var keepPage = box.tagName !== "FORM";
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
        if (keepPage) { a.target = "_blank"; a.rel = "noopener"; }
        li.appendChild(a);
        list.appendChild(li);
      });
      list.hidden = results.length === 0;
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (!q) { seq++; clear(); return; }
      timer = setTimeout(function () {
        var mine = ++seq;
        fetch("/api/v1/helpcenter/search?suggest=1&limit=6&locale=" + lang + "&q=" + encodeURIComponent(q))
          .then(function (r) { return r.ok ? r.json() : { results: [] }; })
          .then(function (data) { show(data.results || [], mine); })
          .catch(clear);
      }, 120);
    });
    input.addEventListener("keydown", function (e) { if (e.key === "Escape") clear(); });
    // Leaving the field closes the list (after a click on a suggestion has landed), so it
    // never covers the rest of the form.
    input.addEventListener("blur", function () { setTimeout(function () { seq++; clear(); }, 200); });
  }
})();
