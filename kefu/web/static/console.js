// kefu agent console: the live parts HTMX does not do by itself.
// One websocket (the chat protocol, docs/chat-protocol.md) per page: it watches the open
// ticket, relays typing, shows who else is on the ticket, follows the inbox, sets
// presence. Everything it receives only triggers HTMX refreshes of server-rendered
// fragments; the server stays the one place that renders.
(function () {
  "use strict";
  const body = document.body;
  if (!body.dataset.agentId) return; // the login page
  const zh = body.dataset.locale !== "en";
  const T = zh
    ? { typing: "客户正在输入…", viewing: "正在查看：", agentTyping: " 正在输入", offline: "连接已断开，正在重连…", unread: "未读" }
    : { typing: "The customer is typing…", viewing: "Also here: ", agentTyping: " is typing", offline: "Connection lost, reconnecting…", unread: "unread" };
  const ticketPage = document.querySelector("[data-live=ticket]");
  const ticket = ticketPage ? ticketPage.dataset.ticket : null;
  const live = document.querySelector("[data-live]");
  const flash = document.getElementById("flash");

  // -- debounced refreshes -----------------------------------------------------------
  let refreshTimer = null;
  function refresh(eventName) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      // Don't throw away a selection the agent is making.
      if (eventName === "inbox-changed" && document.querySelector("input[name=numbers]:checked")) return;
      htmx.trigger(body, eventName);
    }, 250);
  }

  // -- websocket ---------------------------------------------------------------------
  let ws = null;
  let backoff = 500;
  const lastSeq = {};
  if (ticket) lastSeq[ticket] = parseInt(ticketPage.dataset.lastSeq || "0", 10);

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/v1/chat/ws");
    ws.onopen = function () {
      // The session cookie authenticates; hello still comes first.
      send({ type: "hello", locale: body.dataset.locale, resume: {} });
    };
    ws.onmessage = function (ev) {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    ws.onclose = function () {
      body.classList.add("offline");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        backoff = 500;
        body.classList.remove("offline");
        if (ticket) send({ type: "watch", ticket: ticket, after: lastSeq[ticket] || 0 });
        if (live && live.dataset.live !== "ticket") send({ type: "follow", inbox: true });
        if (presence) presence.dispatchEvent(new Event("resend"));
        break;
      case "message":
        if (f.ticket === ticket) {
          lastSeq[ticket] = Math.max(lastSeq[ticket] || 0, f.seq);
          refresh("ticket-changed");
          if (f.author && f.author.type === "contact") hideTyping();
        } else {
          bumpUnread(f.ticket);
          refresh("inbox-changed");
        }
        break;
      case "state":
      case "changed":
        if (f.ticket === ticket) refresh("ticket-changed");
        refresh("inbox-changed");
        break;
      case "typing":
        if (f.ticket === ticket) showTyping(f);
        break;
      case "viewers":
        if (f.ticket === ticket) showViewers(f.agents || []);
        break;
      case "error":
        if (flash && f.message) {
          const p = document.createElement("p");
          p.className = "flash flash-error";
          p.setAttribute("role", "alert");
          p.textContent = f.message;
          flash.replaceChildren(p);
        }
        break;
    }
  }

  // -- typing and collision ----------------------------------------------------------
  const typingEl = document.getElementById("typing");
  const collisionEl = document.getElementById("collision");
  let typingTimer = null;
  function showTyping(f) {
    if (!typingEl) return;
    typingEl.textContent = f.from === "agent" ? (f.agent_name || "") + T.agentTyping : T.typing;
    typingEl.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 4000);
  }
  function hideTyping() { if (typingEl) typingEl.hidden = true; }
  function showViewers(agents) {
    if (!collisionEl) return;
    const others = agents.filter(function (a) { return String(a.id) !== body.dataset.agentId; });
    collisionEl.hidden = others.length === 0;
    collisionEl.textContent = others.length ? T.viewing + others.map(function (a) { return a.name + (a.typing ? T.agentTyping : ""); }).join("、") : "";
  }

  // -- composer ----------------------------------------------------------------------
  const composer = document.getElementById("composer");
  let lastTypingSent = 0;
  function composerBody() { return document.getElementById("composer-body"); }
  function setMode(mode) {
    if (!composer) return;
    composer.dataset.mode = mode;
    document.getElementById("composer-internal").value = mode === "note" ? "true" : "false";
    document.getElementById("tab-reply").setAttribute("aria-selected", String(mode === "reply"));
    document.getElementById("tab-note").setAttribute("aria-selected", String(mode === "note"));
    composerBody().focus();
  }
  function newId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).slice(0, 64);
  }
  if (composer) {
    const draftKey = "kefu:draft:" + ticket;
    composer.querySelectorAll("[role=tab]").forEach(function (b) {
      b.addEventListener("click", function () { setMode(b.dataset.mode); });
    });
    document.getElementById("composer-id").value = newId();
    const restored = sessionStorage.getItem(draftKey);
    if (restored && !composerBody().value) composerBody().value = restored;
    composer.addEventListener("input", function (ev) {
      if (ev.target.id !== "composer-body") return;
      sessionStorage.setItem(draftKey, ev.target.value);
      const now = Date.now();
      if (now - lastTypingSent > 2000) {
        lastTypingSent = now;
        send({ type: "typing", ticket: ticket, internal: composer.dataset.mode === "note" });
      }
    });
    composer.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); htmx.trigger(composer, "submit"); }
    });
    composer.addEventListener("htmx:afterRequest", function (ev) {
      if (ev.detail.elt !== composer || !ev.detail.successful) return;
      composerBody().value = "";
      sessionStorage.removeItem(draftKey);
      document.getElementById("composer-id").value = newId();
      document.getElementById("attachments").innerHTML = "";
      if (flash) flash.innerHTML = "";
    });
    // A macro was applied: the picker goes back to "…" for the next one.
    composer.addEventListener("htmx:afterRequest", function (ev) {
      if (ev.detail.elt && ev.detail.elt.id === "macro-pick") {
        ev.detail.elt.value = "";
        composerBody().focus();
      }
    });
    // A suggested article's link goes at the end of the reply (the sidebar's list is
    // swapped in after the page loads, hence the delegation).
    document.addEventListener("click", function (ev) {
      const b = ev.target.closest ? ev.target.closest(".insert-link") : null;
      if (!b) return;
      const area = composerBody();
      const before = area.value.replace(/\s+$/, "");
      area.value = (before ? before + "\n" : "") + (b.dataset.insert || "");
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      area.dispatchEvent(new Event("input", { bubbles: true })); // keeps the draft
    });
    // Attachments by drag and drop: uploaded at once, sent with the message by id.
    const box = document.getElementById("attachments");
    composer.addEventListener("dragover", function (ev) { ev.preventDefault(); composer.classList.add("dropping"); });
    composer.addEventListener("dragleave", function () { composer.classList.remove("dropping"); });
    composer.addEventListener("drop", function (ev) {
      ev.preventDefault();
      composer.classList.remove("dropping");
      Array.from(ev.dataTransfer.files).forEach(upload);
    });
    // Files may go without a word: the text is only required when nothing is attached.
    composer.addEventListener("htmx:validation:validate", function (ev) {
      if (ev.target.id === "composer-body") ev.target.required = !box.querySelector("input[name=attachment_ids]");
    });
    function upload(file) {
      const form = new FormData();
      form.append("file", file);
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = file.name + " …";
      box.appendChild(chip);
      fetch(box.dataset.upload, {
        method: "POST", body: form, credentials: "same-origin",
        headers: { "X-CSRF-Token": JSON.parse(body.getAttribute("hx-headers"))["X-CSRF-Token"] },
      }).then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
        .then(function (res) {
          if (!res[0]) { chip.classList.add("failed"); chip.textContent = file.name + ": " + (res[1].detail || ""); return; }
          chip.textContent = file.name;
          const input = document.createElement("input");
          input.type = "hidden"; input.name = "attachment_ids"; input.value = res[1].id;
          box.appendChild(input);
        });
    }
  }
  // A logged call: a fresh client id per call (a double click is stored once), and
  // an empty form once it is on the timeline.
  const callForm = document.getElementById("call-form");
  if (callForm) {
    document.getElementById("call-id").value = newId();
    callForm.addEventListener("htmx:afterRequest", function (ev) {
      if (ev.detail.elt !== callForm || !ev.detail.successful) return;
      callForm.reset();
      document.getElementById("call-id").value = newId();
      document.getElementById("call-log").open = false;
      if (flash) flash.innerHTML = "";
    });
  }

  // -- presence --------------------------------------------------------------------------
  const presence = document.getElementById("presence");
  if (presence) {
    // The choice outlives page loads: each page opens its own socket, and the server
    // sets an agent whose last socket closed offline (so routing skips them).
    const presenceKey = "kefu:presence:" + body.dataset.agentId;
    const saved = sessionStorage.getItem(presenceKey);
    if (saved) presence.value = saved;
    presence.addEventListener("change", function () {
      sessionStorage.setItem(presenceKey, presence.value);
      send({ type: "presence", status: presence.value });
    });
    // On every (re)connect the server marks an agent whose last socket closed as offline:
    // say again what the agent chose.
    presence.addEventListener("resend", function () {
      if (presence.value !== "offline") send({ type: "presence", status: presence.value });
    });
  }

  // -- unread counts in the chat workspace ---------------------------------------------
  function bumpUnread(number) {
    const el = document.querySelector('[data-unread="' + number + '"]');
    if (!el) return;
    const n = parseInt(el.dataset.n || "0", 10) + 1;
    el.dataset.n = String(n);
    el.textContent = n + " " + T.unread;
    el.hidden = false;
  }

  // -- keyboard --------------------------------------------------------------------------
  let cursor = -1;
  function rows() { return Array.from(document.querySelectorAll("#inbox-rows tr.row")); }
  function focusedRow(list) {
    // A row the agent tabbed to counts as the selection, so j/k go on from there.
    const a = document.activeElement;
    const r = a && a.closest ? a.closest("#inbox-rows tr.row") : null;
    return r ? list.indexOf(r) : -1;
  }
  function moveCursor(step) {
    const list = rows();
    if (!list.length) return;
    const from = focusedRow(list) >= 0 ? focusedRow(list) : Math.min(cursor, list.length - 1);
    cursor = from < 0 ? (step > 0 ? 0 : list.length - 1) : Math.max(0, Math.min(list.length - 1, from + step));
    list.forEach(function (r, i) { r.classList.toggle("cursor", i === cursor); });
    list[cursor].querySelector("a.subject").focus();
  }
  function openRow() {
    const list = rows();
    const i = focusedRow(list) >= 0 ? focusedRow(list) : cursor;
    const r = list[i];
    if (!r) return false;
    location.href = r.querySelector("a.subject").href;
    return true;
  }
  document.addEventListener("keydown", function (ev) {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    const help = document.getElementById("help");
    if (help && help.open) return; // the dialog has the keyboard until it is closed
    switch (ev.key) {
      case "j": moveCursor(1); break;
      case "k": moveCursor(-1); break;
      case "Enter":
        // A focused link or button keeps its own Enter; only the inbox selection is ours.
        if (t && t !== body && !(t.closest && t.closest("#inbox-rows tr.row"))) break;
        if (openRow()) ev.preventDefault();
        break;
      case "o": if (openRow()) ev.preventDefault(); break;
      case "x": {
        const r = rows()[focusedRow(rows()) >= 0 ? focusedRow(rows()) : cursor];
        if (r) { const c = r.querySelector("input[type=checkbox]"); c.checked = !c.checked; }
        break;
      }
      case "r": if (composer) { ev.preventDefault(); setMode("reply"); } break;
      case "n": if (composer) { ev.preventDefault(); setMode("note"); } break;
      case "a": { const s = document.getElementById("field-assignee"); if (s) { ev.preventDefault(); s.focus(); } break; }
      case "e": { const b = document.getElementById("solve"); if (b) { ev.preventDefault(); b.click(); } break; }
      case "/": {
        ev.preventDefault();
        const f = document.getElementById("filter-q");
        if (f) f.focus(); else location.href = "/agent/inbox/all#search";
        break;
      }
      case "?": if (help) { ev.preventDefault(); help.showModal(); } break;
    }
  });

  if (location.hash === "#search") {
    const f = document.getElementById("filter-q");
    if (f) f.focus();
  }

  connect();
})();
