// The city view: every point's wait per procedure, live (SSE). No location, no cookies.
"use strict";
(function () {
  const board = new Map();            // site -> entry (see qms/city/hub.py public_entry)
  const numbered = new Map();         // entry.i -> entry: how changes name a point
  const select = document.getElementById("service");
  const list = document.getElementById("points");
  const status = document.getElementById("status");
  const empty = document.getElementById("empty");
  const params = new URLSearchParams(location.search);
  let chosen = params.get("service") || "";
  let drawPending = false;

  function minutes(s) { return Math.max(1, Math.ceil(s / 60)); }

  function waitText(s) {
    if (!s.open) return ["Không nhận hồ sơ lúc này", ""];
    if (!s.waiting) return ["Không phải chờ", ""];
    const people = s.waiting.toLocaleString("vi-VN") + " người đang chờ";
    if (!s.est_wait_s) return ["Không phải chờ", people];
    return ["Chờ khoảng " + minutes(s.est_wait_s).toLocaleString("vi-VN") + " phút", people];
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fillServices() {
    const names = new Map();
    for (const p of board.values()) for (const s of p.services) if (!names.has(s.id)) names.set(s.id, s.name_vi);
    const known = new Set(Array.from(select.options).map(o => o.value));
    const sorted = Array.from(names.entries()).sort((a, b) => a[1].localeCompare(b[1], "vi"));
    for (const [id, name] of sorted) {
      if (known.has(id)) continue;
      const o = el("option", "", name);
      o.value = id;
      select.appendChild(o);
    }
    select.value = chosen;
  }

  function stateOf(p) {
    if (p.stale) return ["stale", "Chưa có dữ liệu mới"];
    return p.open ? ["open", "Đang mở cửa"] : ["closed", "Đã đóng cửa"];
  }

  function draw() {
    drawPending = false;
    fillServices();
    let points = Array.from(board.values());
    if (chosen) {
      points = points.filter(p => p.services.some(s => s.id === chosen));
      const wait = p => { const s = p.services.find(x => x.id === chosen);
        return (p.stale || !s.open) ? Infinity : (s.waiting ? s.est_wait_s || 0 : 0); };
      // equal estimates (every counter free): fewer people waiting first
      const ahead = p => p.services.find(x => x.id === chosen).waiting || 0;
      points.sort((a, b) => wait(a) - wait(b) || ahead(a) - ahead(b) || a.name.localeCompare(b.name, "vi"));
    } else {
      points.sort((a, b) => a.center.localeCompare(b.center, "vi") || a.name.localeCompare(b.name, "vi"));
    }
    const items = points.map(p => {
      const li = el("li", "point");
      li.dataset.site = p.site;
      li.appendChild(el("div", "center", p.center));
      li.appendChild(el("h2", "", p.name));
      if (p.address) li.appendChild(el("p", "address", p.address));
      const [cls, text] = stateOf(p);
      li.appendChild(el("span", "state " + cls, text));
      const ul = el("ul", "services");
      for (const s of p.services) {
        if (chosen && s.id !== chosen) continue;
        const row = el("li", s.open && !p.stale ? "open" : "closed");
        row.dataset.service = s.id;
        row.appendChild(el("span", "name", s.name_vi));
        const [main, sub] = p.stale ? ["—", ""] : waitText(s);
        const w = el("span", "wait", main);
        if (sub) w.appendChild(el("small", "", sub));
        row.appendChild(w);
        ul.appendChild(row);
      }
      li.appendChild(ul);
      return li;
    });
    list.replaceChildren(...items);
    empty.hidden = items.length > 0;
  }

  function schedule() { if (!drawPending) { drawPending = true; requestAnimationFrame(draw); } }

  // a whole board (a list of entries), or a change (qms/city/hub.py): whole entries ("w")
  // and rows of numbers ("n") of the point numbered i on this board
  function merge(msg) {
    for (const e of Array.isArray(msg) ? msg : (msg.w || [])) { board.set(e.site, e); numbered.set(e.i, e); }
    for (const r of Array.isArray(msg) ? [] : (msg.n || [])) {
      const p = numbered.get(r[0]);
      if (!p) continue;
      p.updated_at = r[1] === null ? null : msg.t + r[1];
      if (r[2]) { p.stale = Boolean((r[2] - 1) & 1); p.open = Boolean((r[2] - 1) & 2); }
      for (let j = 3; j + 3 < r.length; j += 4) {
        const s = p.services[r[j]];
        if (s) [s.waiting, s.est_wait_s, s.open] = [r[j + 1], r[j + 2], Boolean(r[j + 3])];
      }
    }
    schedule();
  }

  function reset(entries) { board.clear(); numbered.clear(); merge(entries); }

  select.addEventListener("change", () => {
    chosen = select.value;
    const url = new URL(location.href);
    if (chosen) url.searchParams.set("service", chosen); else url.searchParams.delete("service");
    history.replaceState(null, "", url);
    schedule();
  });

  // The board once (gzipped by the server, with its version), then the stream from that
  // version on: the server sends exactly the changes after it, or the whole board ("board")
  // when it no longer has them. On a reconnect the browser sends the last id it had
  // (Last-Event-ID), so the same holds: changes only ever apply to the board they follow.
  function connect(since) {
    const es = new EventSource("/api/v1/city/stream" + (since ? "?since=" + encodeURIComponent(since) : ""));
    es.addEventListener("board", ev => reset(JSON.parse(ev.data)));
    es.onmessage = ev => merge(JSON.parse(ev.data));
    es.onopen = () => { status.textContent = "Đang cập nhật trực tiếp"; status.className = "status ok"; };
    es.onerror = () => { status.textContent = "Mất kết nối, đang thử lại…"; status.className = "status lost"; };
  }

  fetch("/api/v1/city", { cache: "no-store" }).then(r => {
    if (!r.ok) throw new Error(r.status);
    const version = r.headers.get("X-Board-Version");
    return r.json().then(entries => { reset(entries); connect(version); });
  }).catch(() => connect(null));      // no board: the stream starts with the whole board
})();
