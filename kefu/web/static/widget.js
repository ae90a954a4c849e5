/*
 * kefu chat widget: one <script> on any page of the exchange's site or app webview.
 *
 *   <script src="https://support.example.com/static/widget.js" defer
 *           data-locale="zh-CN" data-identity-url="/api/support-identity"></script>
 *
 * data-identity-url (optional) is fetched on the host page's own origin, with its
 * cookies, and answers {"token": "<identity JWT signed by the exchange>"}; without it
 * the customer chats as an anonymous visitor (remembered in localStorage). The page can
 * also call window.KefuWidget.identify(token) and window.KefuWidget.open().
 *
 * It speaks docs/chat-protocol.md: messages are kept until acknowledged and sent again
 * with the same id after a reconnect (stored once), and a reconnect resumes from the
 * last sequence seen, so nothing is lost or shown twice. Everything shown is text
 * (textContent), never HTML. Styles live in widget.css inside a shadow root, so the
 * host page and the widget cannot restyle each other.
 *
 * Screenshots: a file is uploaded to /api/v1/attachments (with the identity token, or
 * the visitor token in X-Kefu-Visitor) and its id sent in the msg frame; files in
 * messages are fetched the same way and shown as thumbnails or download links. The
 * transcript form asks for the chat by email (a "transcript" frame).
 */
(function () {
  "use strict";
  if (window.KefuWidget) return;
  var script = document.currentScript;
  var base = new URL(script && script.src ? script.src : "/static/widget.js", location.href);
  var origin = base.origin;
  var data = (script && script.dataset) || {};
  var lang = (data.locale || document.documentElement.lang || navigator.language || "zh-CN")
    .toLowerCase().indexOf("en") === 0 ? "en" : "zh-CN";
  var zh = lang === "zh-CN";
  var T = zh ? {
    launcher: "在线客服", title: "KX 在线客服", close: "关闭",
    safety: "客服绝不会索要密码、验证码、助记词或私钥，也不会让您转账到“安全账户”。",
    topic: "咨询类型", describe: "请描述您的问题", start: "开始咨询", send: "发送",
    placeholder: "输入消息…（Enter 发送）", human: "转人工", end: "结束会话",
    waiting: "排队中：前面还有 {n} 人", eta: "，预计等待约 {m} 分钟",
    nobody: "当前暂无客服在线。您可以留下邮箱，我们会通过邮件回复您。",
    email: "接收回复的邮箱", leave: "留言", left: "已收到您的留言，我们会通过邮件回复您。",
    serving: "客服 {name} 为您服务", typing: "客服正在输入…", ended: "会话已结束。",
    rate: "请为本次服务评分", stars: "总体评价", speed: "响应速度", professionalism: "专业程度",
    communication: "沟通态度", resolution: "问题解决", comment: "其他意见（选填）", submit: "提交评价",
    thanks: "感谢您的评价！", reconnecting: "连接中断，正在重连…", sending: "发送中", sentOk: "已送达",
    newChat: "新的咨询", you: "我", bot: "智能助手", agent: "客服", system: "系统",
    maybe: "这些文章也许能解决您的问题：",
    attach: "图片", attachLabel: "发送图片或 PDF", uploading: "正在上传…", uploadFailed: "上传失败，请重试。",
    tooBig: "文件过大（上限 {mb} MB）。", badType: "仅支持图片（PNG、JPEG、WebP、GIF）和 PDF 文件。",
    download: "下载", transcript: "发送聊天记录到邮箱", transcriptEmail: "接收邮箱（已登录可留空）",
    transcriptSend: "发送", transcriptSent: "聊天记录将发送至 {email}，请注意查收。",
    topics: [["deposit_withdrawal", "充值提现"], ["account_security", "账户被盗/安全"], ["trading", "交易"], ["kyc", "身份认证"], ["other", "其他"]]
  } : {
    launcher: "Live support", title: "KX Live Support", close: "Close",
    safety: "Support never asks for passwords, codes, seed phrases or private keys, and never asks you to move funds to a 'safe account'.",
    topic: "Topic", describe: "Describe your problem", start: "Start", send: "Send",
    placeholder: "Type a message… (Enter sends)", human: "Talk to a person", end: "End chat",
    waiting: "In the queue: {n} ahead of you", eta: ", about {m} min",
    nobody: "No agent is online right now. Leave your email and we will reply by email.",
    email: "Email for our reply", leave: "Leave a message", left: "Message received; we will reply by email.",
    serving: "{name} is helping you", typing: "Support is typing…", ended: "The chat has ended.",
    rate: "Rate this chat", stars: "Overall", speed: "Response speed", professionalism: "Professionalism",
    communication: "Communication", resolution: "Problem solved", comment: "Anything else (optional)", submit: "Send rating",
    thanks: "Thank you for your feedback!", reconnecting: "Connection lost, reconnecting…", sending: "sending", sentOk: "delivered",
    newChat: "New chat", you: "Me", bot: "Assistant", agent: "Support", system: "System",
    maybe: "These articles may answer your question:",
    attach: "Image", attachLabel: "Send an image or PDF", uploading: "Uploading…", uploadFailed: "Upload failed, please try again.",
    tooBig: "The file is too large (at most {mb} MB).", badType: "Only images (PNG, JPEG, WebP, GIF) and PDF files can be sent.",
    download: "Download", transcript: "Email me the chat transcript", transcriptEmail: "Email (optional if you are signed in)",
    transcriptSend: "Send", transcriptSent: "The transcript is on its way to {email}.",
    topics: [["deposit_withdrawal", "Deposits & withdrawals"], ["account_security", "Account stolen / security"], ["trading", "Trading"], ["kyc", "Identity verification"], ["other", "Other"]]
  };

  // -- storage: survives reloads, per kefu origin ---------------------------------------
  var KEY = "kefu:" + origin + ":";
  function load(name, fallback) {
    try { var v = localStorage.getItem(KEY + name); return v ? JSON.parse(v) : fallback; } catch (e) { return fallback; }
  }
  function save(name, value) {
    try { localStorage.setItem(KEY + name, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  var state = {
    visitor: load("visitor", null),
    ticket: load("ticket", null),      // the current chat's number
    seq: 0,                            // last sequence shown on this page: a reload replays
    pending: load("pending", []),      // [{id, ticket, text}] not acknowledged yet
    chatState: null,
    token: null,
    rated: load("rated", null),
    limits: {}                         // from welcome: upload size and types
  };
  function persist() {
    save("visitor", state.visitor); save("ticket", state.ticket);
    save("pending", state.pending); save("rated", state.rated);
  }

  // -- DOM ------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "kefu-widget";
  var root = host.attachShadow({ mode: "open" });
  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = origin + "/static/widget.css";
  root.appendChild(css);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  // An email field labelled by its placeholder (the widget has no room for labels).
  function emailField(label) {
    var input = el("input");
    input.type = "email";
    input.placeholder = label;
    input.setAttribute("aria-label", label);
    input.autocomplete = "email";
    return input;
  }
  var launcher = el("button", "launcher", T.launcher);
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  var panel = el("section", "panel");
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", T.title);
  var head = el("header", "head");
  head.appendChild(el("strong", null, T.title));
  var closeBtn = el("button", "close", "×");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", T.close);
  head.appendChild(closeBtn);
  var safety = el("p", "safety", T.safety);
  var status = el("p", "status");
  status.setAttribute("aria-live", "polite");
  status.hidden = true;
  var log = el("ol", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("p", "typing", T.typing);
  typing.hidden = true;

  // The first screen: topic and problem.
  var startForm = el("form", "start");
  var topicLabel = el("label", null, T.topic);
  var topicSelect = el("select");
  topicSelect.name = "topic";
  T.topics.forEach(function (t) { var o = el("option", null, t[1]); o.value = t[0]; topicSelect.appendChild(o); });
  topicLabel.appendChild(topicSelect);
  var describe = el("textarea");
  describe.rows = 3;
  describe.maxLength = 4000;
  describe.required = true;
  describe.setAttribute("aria-label", T.describe);
  describe.placeholder = T.describe;
  // Articles that may answer the question while it is typed (deflection), before any
  // chat is opened; the customer can still start the chat.
  var suggestBox = el("div", "suggest");
  suggestBox.setAttribute("aria-live", "polite");
  suggestBox.hidden = true;
  var suggestList = el("ul", "articles");
  suggestBox.appendChild(el("p", null, T.maybe));
  suggestBox.appendChild(suggestList);
  var startBtn = el("button", "primary", T.start);
  startBtn.type = "submit";
  startForm.appendChild(topicLabel);
  startForm.appendChild(describe);
  startForm.appendChild(suggestBox);
  startForm.appendChild(startBtn);

  // In a chat: actions, the composer.
  var actions = el("div", "actions");
  var humanBtn = el("button", null, T.human);
  humanBtn.type = "button";
  var endBtn = el("button", null, T.end);
  endBtn.type = "button";
  actions.appendChild(humanBtn);
  actions.appendChild(endBtn);
  var composer = el("form", "composer");
  var input = el("textarea");
  input.rows = 2;
  input.maxLength = 4000;
  input.placeholder = T.placeholder;
  input.setAttribute("aria-label", T.placeholder);
  var sendBtn = el("button", "primary", T.send);
  sendBtn.type = "submit";
  // A screenshot: picked here, uploaded, then sent as a msg with its attachment id.
  var fileInput = el("input");
  fileInput.type = "file";
  fileInput.accept = "image/png,image/jpeg,image/webp,image/gif,application/pdf";
  fileInput.hidden = true;
  fileInput.setAttribute("aria-label", T.attachLabel);
  var attachBtn = el("button", "attach", T.attach);
  attachBtn.type = "button";
  attachBtn.title = T.attachLabel;
  attachBtn.setAttribute("aria-label", T.attachLabel);
  composer.appendChild(attachBtn);
  composer.appendChild(fileInput);
  composer.appendChild(input);
  composer.appendChild(sendBtn);

  // The transcript by email, during the chat and after it.
  var transcriptBox = el("details", "transcript");
  transcriptBox.hidden = true;
  transcriptBox.appendChild(el("summary", null, T.transcript));
  var transcriptForm = el("form", "transcript-form");
  var transcriptEmail = emailField(T.transcriptEmail);
  var transcriptBtn = el("button", "primary", T.transcriptSend);
  transcriptBtn.type = "submit";
  transcriptForm.appendChild(transcriptEmail);
  transcriptForm.appendChild(transcriptBtn);
  transcriptBox.appendChild(transcriptForm);

  // Nobody online: leave a message.
  var leaveForm = el("form", "leave");
  leaveForm.hidden = true;
  leaveForm.appendChild(el("p", null, T.nobody));
  var emailInput = emailField(T.email);
  emailInput.required = true;
  var leaveBtn = el("button", "primary", T.leave);
  leaveBtn.type = "submit";
  leaveForm.appendChild(emailInput);
  leaveForm.appendChild(leaveBtn);

  // After the chat: the four dimensions supervisors measure.
  var rateForm = el("form", "rate");
  rateForm.hidden = true;
  rateForm.appendChild(el("p", null, T.rate));
  var DIMENSIONS = ["stars", "speed", "professionalism", "communication", "resolution"];
  DIMENSIONS.forEach(function (name) {
    var row = el("fieldset", "stars");
    row.appendChild(el("legend", null, T[name]));
    for (var i = 1; i <= 5; i++) {
      var lab = el("label");
      var r = el("input");
      r.type = "radio"; r.name = name; r.value = String(i);
      if (name === "stars") r.required = true;
      lab.appendChild(r);
      lab.appendChild(document.createTextNode(" " + i));
      row.appendChild(lab);
    }
    rateForm.appendChild(row);
  });
  var comment = el("textarea");
  comment.name = "comment"; comment.rows = 2; comment.maxLength = 1000;
  comment.placeholder = T.comment;
  comment.setAttribute("aria-label", T.comment);
  rateForm.appendChild(comment);
  var rateBtn = el("button", "primary", T.submit);
  rateBtn.type = "submit";
  rateForm.appendChild(rateBtn);
  var newBtn = el("button", "new", T.newChat);
  newBtn.type = "button";
  newBtn.hidden = true;

  [head, safety, status, log, typing, startForm, actions, leaveForm, composer, rateForm, transcriptBox, newBtn]
    .forEach(function (n) { panel.appendChild(n); });
  root.appendChild(launcher);
  root.appendChild(panel);

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    save("open", open);
    if (open) {
      connect();
      (state.ticket ? input : describe).focus();
    }
  }
  launcher.addEventListener("click", function () { setOpen(panel.hidden); });
  closeBtn.addEventListener("click", function () { setOpen(false); });

  // -- rendering --------------------------------------------------------------------------
  var shown = {};       // seq -> li
  var pendingEls = {};  // client id -> li
  function who(author) {
    if (!author) return T.system;
    if (author.type === "contact") return T.you;
    if (author.type === "agent") return T.agent;
    return T.system;
  }
  function line(cls, name, text) {
    var li = el("li", "msg " + cls);
    li.appendChild(el("span", "who", name));
    if (text) li.appendChild(el("span", "text", text));
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return li;
  }
  // Files are fetched with the chat's credentials (an <img src> could not send them)
  // and shown from a blob: an image as a thumbnail, anything else as a download.
  function authHeaders() {
    var h = { "Accept-Language": lang };
    if (state.token) h.Authorization = "Bearer " + state.token;
    else if (state.visitor) h["X-Kefu-Visitor"] = state.visitor;
    return h;
  }
  function fetchFile(url) {
    return fetch(new URL(url, origin).href, { headers: authHeaders(), credentials: "omit" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.blob(); });
  }
  function showFiles(li, files, local) {
    if (!files || !files.length) return;
    var box = el("div", "files");
    files.forEach(function (f, i) {
      var isImage = /^image\//.test(f.content_type || "");
      if (isImage) {
        var link = el("a", "thumb-link");
        link.target = "_blank";
        link.rel = "noopener";
        var img = el("img", "thumb");
        img.alt = f.filename || "";
        link.appendChild(img);
        box.appendChild(link);
        var display = function (blob) {
          var u = URL.createObjectURL(blob);
          img.src = u; link.href = u;
          log.scrollTop = log.scrollHeight;
        };
        if (local && local[i]) display(local[i]);
        else if (f.url) fetchFile(f.url).then(display).catch(function () { img.alt = f.filename + " ✕"; });
      } else {
        var a = el("a", "file", "📎 " + (f.filename || T.download));
        a.href = "#";
        a.addEventListener("click", function (ev) {
          ev.preventDefault();
          if (!f.url) return;
          fetchFile(f.url).then(function (blob) {
            var tmp = document.createElement("a");
            tmp.href = URL.createObjectURL(blob);
            tmp.download = f.filename || "attachment"; // a download, never opened on this page
            root.appendChild(tmp); tmp.click(); tmp.remove();
          }).catch(function () { say(T.uploadFailed); });
        });
        box.appendChild(a);
      }
    });
    li.appendChild(box);
  }
  function showMessage(f) {
    if (f.seq <= state.seq || shown[f.seq]) return;
    state.seq = f.seq;
    var mine = f.author && f.author.type === "contact";
    if (mine && f.client_msg_id && pendingEls[f.client_msg_id]) {
      // Our own message, already on screen: mark it delivered.
      pendingEls[f.client_msg_id].classList.remove("pending");
      shown[f.seq] = pendingEls[f.client_msg_id];
      persist();
      return;
    }
    var cls = mine ? "mine" : (f.author && f.author.type === "agent" ? "agent" : "system");
    var name = f.kind === "bot_suggestions" ? T.bot : who(f.author);
    var li = line(cls, name, f.body || "");
    if (f.kind) li.classList.add("kind-" + f.kind);
    showFiles(li, f.files);
    if (Array.isArray(f.articles) && f.articles.length) {
      var ul = el("ul", "articles");
      f.articles.forEach(function (a) {
        var item = el("li");
        var link = el("a", null, a.title);
        link.href = new URL(a.url, origin).href;
        link.target = "_blank";
        link.rel = "noopener";
        item.appendChild(link);
        ul.appendChild(item);
      });
      li.appendChild(ul);
    }
    shown[f.seq] = li;
    if (!mine) typing.hidden = true;
    persist();
  }
  function render() {
    var s = state.chatState;
    var inChat = !!state.ticket && s !== "ended" && s !== "left_message";
    startForm.hidden = !!state.ticket;
    composer.hidden = !inChat;
    actions.hidden = !inChat;
    humanBtn.hidden = s !== "bot";
    rateForm.hidden = !(state.ticket && s === "ended" && state.rated !== state.ticket);
    transcriptBox.hidden = !state.ticket || !s;
    newBtn.hidden = !(state.ticket && (s === "ended" || s === "left_message"));
    if (s !== "queued") leaveForm.hidden = true;
  }
  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  // -- the socket -------------------------------------------------------------------------
  var ws = null;
  var backoff = 500;
  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }
  function newId() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
  }
  function identity() {
    if (state.token || !data.identityUrl) return Promise.resolve(state.token);
    return fetch(data.identityUrl, { credentials: "include" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (j) { state.token = j && j.token ? j.token : null; return state.token; })
      .catch(function () { return null; });
  }
  var connecting = false;
  function connect() {
    if (connecting || (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING))) return;
    connecting = true;
    identity().then(function (token) {
      var sock = new WebSocket(origin.replace(/^http/, "ws") + "/api/v1/chat/ws");
      ws = sock;
      connecting = false;
      sock.onopen = function () {
        var hello = { type: "hello", locale: lang, resume: {} };
        if (token) hello.token = token;
        else if (state.visitor) hello.visitor = state.visitor;
        if (state.ticket) hello.resume[state.ticket] = state.seq;
        sock.send(JSON.stringify(hello));
      };
      sock.onmessage = function (ev) {
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        onFrame(f);
      };
      sock.onclose = function () {
        if (ws !== sock) return; // replaced (identify)
        if (panel.hidden && !state.ticket) return; // nothing to keep alive
        say(T.reconnecting);
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 10000);
      };
    });
  }
  function flushPending() {
    state.pending.forEach(function (p) {
      if (p.start) send({ type: "start", topic: p.topic, text: p.text, id: p.id });
      else send(msgFrame(p));
    });
  }
  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        backoff = 500;
        say("");
        if (f.visitor) { state.visitor = f.visitor; }
        state.limits = f.limits || {};
        var live = (f.chats || []).filter(function (c) { return c.ticket === state.ticket; })[0];
        if (!live && !state.ticket && f.chats && f.chats.length) {
          // A known customer on a new device: pick up their live chat.
          live = f.chats[0];
          state.ticket = live.ticket;
          send({ type: "resume", ticket: live.ticket, after: 0 });
        }
        if (live) state.chatState = live.chat_state;
        else if (state.ticket && state.chatState === null) state.chatState = "ended";
        persist();
        flushPending();
        render();
        break;
      case "visitor":
        state.visitor = f.visitor; persist(); break;
      case "started":
        state.ticket = f.ticket;
        state.chatState = f.chat_state;
        state.seq = 0;
        state.pending = state.pending.filter(function (p) { return !p.start; });
        persist();
        render();
        break;
      case "ack":
        state.pending = state.pending.filter(function (p) { return p.id !== f.id; });
        if (pendingEls[f.id]) { pendingEls[f.id].classList.remove("pending"); }
        persist();
        break;
      case "message":
        if (f.ticket === state.ticket) showMessage(f);
        break;
      case "state":
        if (f.ticket !== state.ticket) break;
        state.chatState = f.chat_state;
        if (f.chat_state === "active" && f.agent_name) say(T.serving.replace("{name}", f.agent_name));
        else if (f.chat_state === "ended") say(T.ended);
        else if (f.chat_state === "left_message") say(T.left);
        render();
        break;
      case "queue":
        if (f.ticket !== state.ticket) break;
        if (!f.agents_online) {
          say(T.nobody);
          leaveForm.hidden = false;
        } else {
          var text = T.waiting.replace("{n}", String(Math.max(0, f.position - 1)));
          if (f.eta_seconds != null) text += T.eta.replace("{m}", String(Math.max(1, Math.round(f.eta_seconds / 60))));
          say(text);
          leaveForm.hidden = true;
        }
        break;
      case "typing":
        if (f.ticket === state.ticket && f.from === "agent") {
          typing.hidden = false;
          clearTimeout(onFrame.typingTimer);
          onFrame.typingTimer = setTimeout(function () { typing.hidden = true; }, 4000);
        }
        break;
      case "done":
        if (f.ref === "rate") { state.rated = state.ticket; persist(); render(); say(T.thanks); }
        if (f.ref === "transcript") {
          say(T.transcriptSent.replace("{email}", f.email || ""));
          transcriptBox.open = false;
        }
        break;
      case "error":
        say(f.message || "");
        if (f.ref) {
          // A refused start or message is not retried: the reason is on screen.
          state.pending = state.pending.filter(function (p) { return p.id !== f.ref; });
          persist();
        }
        break;
    }
  }

  // -- actions ------------------------------------------------------------------------------
  var suggestTimer = null;
  var suggestSeq = 0;
  function showSuggestions(results, mine) {
    if (mine !== suggestSeq) return; // the answer to an older keystroke
    suggestList.textContent = "";
    results.slice(0, 3).forEach(function (r) {
      var li = el("li");
      var a = el("a", null, r.title); // text, never HTML
      a.href = new URL(r.url, origin).href;
      a.target = "_blank";
      a.rel = "noopener";
      li.appendChild(a);
      suggestList.appendChild(li);
    });
    suggestBox.hidden = suggestList.childNodes.length === 0;
  }
  describe.addEventListener("input", function () {
    clearTimeout(suggestTimer);
    var q = describe.value.trim();
    if (q.length < 2) { suggestSeq++; showSuggestions([], suggestSeq); return; }
    suggestTimer = setTimeout(function () {
      var mine = ++suggestSeq;
      fetch(origin + "/api/v1/helpcenter/search?suggest=1&limit=3&locale=" + lang + "&q=" + encodeURIComponent(q.slice(0, 200)))
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (j) { showSuggestions((j && j.results) || [], mine); })
        .catch(function () { showSuggestions([], mine); });
    }, 250);
  });
  startForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = describe.value.trim();
    if (!text) return;
    suggestSeq++;
    showSuggestions([], suggestSeq);
    var p = { start: true, id: newId(), topic: topicSelect.value, text: text };
    state.pending.push(p);
    persist();
    pendingEls[p.id] = line("mine pending", T.you, text);
    describe.value = "";
    send({ type: "start", topic: p.topic, text: text, id: p.id });
    input.focus();
  });
  function msgFrame(p) {
    var frame = { type: "msg", ticket: p.ticket, text: p.text, id: p.id };
    if (p.files && p.files.length) frame.attachments = p.files.map(function (f) { return f.id; });
    return frame;
  }
  function sendMessage(text, files, local) {
    var p = { id: newId(), ticket: state.ticket, text: text };
    if (files) p.files = files;
    state.pending.push(p);
    persist();
    var li = pendingEls[p.id] = line("mine pending", T.you, text);
    showFiles(li, files, local);
    send(msgFrame(p)); // else sent on reconnect
  }
  composer.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || !state.ticket) return;
    input.value = "";
    sendMessage(text);
  });
  attachBtn.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file || !state.ticket) return;
    var lim = state.limits || {};
    // Checked here to save a useless upload; the server checks again, by the bytes.
    if (lim.max_upload_bytes && file.size > lim.max_upload_bytes) {
      say(T.tooBig.replace("{mb}", String(Math.floor(lim.max_upload_bytes / 1048576)))); return;
    }
    if (lim.attachment_types && file.type && lim.attachment_types.indexOf(file.type) < 0) {
      say(T.badType); return;
    }
    var form = new FormData();
    form.append("file", file, file.name);
    say(T.uploading);
    attachBtn.disabled = true;
    fetch(origin + "/api/v1/attachments", { method: "POST", body: form, headers: authHeaders(), credentials: "omit" })
      .then(function (r) { return r.json().catch(function () { return {}; }).then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        if (!res.ok || !res.j.id) { say(res.j.detail || T.uploadFailed); return; }
        say("");
        var text = input.value.trim();
        input.value = "";
        sendMessage(text, [res.j], [file]);
      })
      .catch(function () { say(T.uploadFailed); })
      .then(function () { attachBtn.disabled = false; });
  });
  transcriptForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!state.ticket) return;
    var frame = { type: "transcript", ticket: state.ticket, id: "transcript" };
    var email = transcriptEmail.value.trim();
    if (email) frame.email = email;
    send(frame);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); composer.requestSubmit(); }
  });
  var lastTyping = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (state.ticket && now - lastTyping > 2000) { lastTyping = now; send({ type: "typing", ticket: state.ticket }); }
  });
  humanBtn.addEventListener("click", function () { send({ type: "human", ticket: state.ticket, id: "human" }); });
  endBtn.addEventListener("click", function () { send({ type: "end", ticket: state.ticket, id: "end" }); });
  leaveForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    send({ type: "leave", ticket: state.ticket, email: emailInput.value.trim(), id: "leave" });
  });
  rateForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var frame = { type: "rate", ticket: state.ticket, id: "rate" };
    DIMENSIONS.forEach(function (name) {
      var picked = rateForm.querySelector("input[name=" + name + "]:checked");
      if (picked) frame[name] = parseInt(picked.value, 10);
    });
    if (comment.value.trim()) frame.comment = comment.value.trim();
    send(frame);
  });
  newBtn.addEventListener("click", function () {
    state.ticket = null; state.seq = 0; state.chatState = null; state.pending = [];
    shown = {}; pendingEls = {};
    log.textContent = "";
    say("");
    persist();
    render();
    describe.focus();
  });

  window.KefuWidget = {
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    identify: function (token) {
      state.token = token;
      var old = ws;
      ws = null;
      if (old) old.close();
      connect();
    },
  };

  function mount() {
    document.body.appendChild(host);
    render();
    // Come back to an open chat after a reload or on the next page.
    if (load("open", false) || state.ticket) setOpen(load("open", false));
    if (state.ticket && !ws) connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
