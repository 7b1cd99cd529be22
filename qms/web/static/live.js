/* Live updates of the ticket page and the board: the server renders, this swaps it in.
   Plain ES5 so that old phones run it; no third-party code. */
(function () {
  "use strict";
  var root = document.documentElement;
  var main = document.getElementById("live");
  var status = document.getElementById("status");
  var toggle = document.getElementById("lang");

  function both(vi, en) {
    return '<span lang="vi">' + vi + '</span><span lang="en">' + en + "</span>";
  }

  toggle.addEventListener("click", function (ev) {
    ev.preventDefault();
    var next = root.getAttribute("data-lang") === "vi" ? "en" : "vi";
    root.setAttribute("data-lang", next);
    root.setAttribute("lang", next);
    document.cookie = "lang=" + next + "; path=/; max-age=31536000; SameSite=Lax";
    toggle.setAttribute("href", "?lang=" + (next === "vi" ? "en" : "vi"));
  });

  /* the board's clock, in the site's time zone whatever the viewer's */
  var clock = document.getElementById("clock");
  if (clock && window.Intl) {
    var fmt = null;
    try {
      fmt = new Intl.DateTimeFormat("vi-VN", {timeZone: clock.getAttribute("data-tz"), hour: "2-digit",
                                               minute: "2-digit", hour12: false});
    } catch (e) { fmt = null; }
    if (fmt) {
      var tick = function () { clock.textContent = fmt.format(new Date()); };
      tick();
      setInterval(tick, 15000);
    }
  }

  var url = main && main.getAttribute("data-stream");
  if (!url) { return; }
  var done = false;
  var source = null;

  function stateOf() {
    var s = main.firstElementChild;
    return s ? s.getAttribute("data-state") : null;
  }

  function show(msg) {
    var before = stateOf();
    if (msg.html !== undefined && msg.html !== main.innerHTML) { main.innerHTML = msg.html; }
    var after = stateOf();
    if (after === "called" && before !== "called") {
      if (navigator.vibrate) { navigator.vibrate([300, 150, 300, 150, 600]); }
      document.title = "\u25B6 " + document.title.replace(/^\u25B6 /, "");
    }
    status.innerHTML = both("\u25CF Tự cập nhật", "\u25CF Live");
    status.className = "status ok";
    if (msg.final) {
      done = true;
      status.innerHTML = "";
      if (source) { source.close(); }
    }
  }

  function lost() {
    status.innerHTML = both("Mất kết nối, đang thử lại…", "Connection lost, retrying…");
    status.className = "status lost";
  }

  function poll() {
    if (done) { return; }
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url.replace(/events$/, "fragment"));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status === 200) { show(JSON.parse(xhr.responseText)); } else { lost(); }
      setTimeout(poll, 5000);
    };
    xhr.onerror = function () { lost(); setTimeout(poll, 10000); };
    xhr.send();
  }

  if (window.EventSource) {
    source = new EventSource(url);
    source.onmessage = function (e) { show(JSON.parse(e.data)); };
    source.onerror = function () {
      if (done) { return; }
      lost();
      if (source.readyState === 2) { source = null; setTimeout(poll, 5000); }   /* refused: poll instead */
    };
  } else {
    setTimeout(poll, 5000);
  }
}());
