/// The status page's script, first part: polling `/stats`, the history behind the charts, and
/// drawing the figures (`StatusPage`). Every figure drawn from `/stats` carries its place in the
/// document (`data-stat`, a JSON array of keys; an upstream is named by its name) and its raw
/// value (`data-value`), so a test can check the page against `/stats`. Text from the host goes
/// into the page as text nodes only, never as markup.
enum StatusPageScript {
    static let data = #"""
    "use strict";
    const REFRESH_MS = 1000;
    const TIMEOUT_MS = 3000;
    const HISTORY_SAMPLES = 300;  // five minutes at one sample a second
    const TOKEN_KEY = "sssonector.admin-token";

    const page = {
      token: sessionStorage.getItem(TOKEN_KEY),
      history: new Map(),   // pipeline -> [{t, total, active, rate}]
      drained: new Map(),   // "pipeline/upstream" -> {name, address, weight}, drained from this page
      lastUpdate: null, downSince: null, refreshes: 0, timer: null, inFlight: false, signedOut: false,
    };

    const $ = (id) => document.getElementById(id);

    function el(tag, attrs = {}, ...children) {
      const node = document.createElement(tag);
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
      for (const child of children.flat(Infinity)) {
        if (child !== null && child !== undefined && child !== false) node.append(child);
      }
      return node;
    }

    const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
    const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });

    // How to show a figure, from its keys: "bytes_up", "duration_seconds.p50", "peak_at_unix_seconds".
    function kindOf(path) {
      const keys = path.join(".");
      if (/bytes/.test(keys)) return "bytes";
      if (/unix/.test(keys)) return "time";
      if (/seconds/.test(keys)) return "seconds";
      return "number";
    }

    function format(value, kind = "number") {
      if (typeof value !== "number") return value === null ? "–" : String(value);
      if (kind === "bytes") {
        const units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let n = value, i = 0;
        while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
        return (i === 0 ? integer.format(n) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
      }
      if (kind === "seconds") {
        if (value === 0) return "0 s";
        if (value < 0.001) return (value * 1e6).toFixed(0) + " µs";
        if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 1) + " ms";
        return value.toFixed(2) + " s";
      }
      if (kind === "time") return new Date(value * 1000).toLocaleString();
      if (kind === "rate") return value.toFixed(value < 10 ? 1 : 0) + "/s";
      return Number.isInteger(value) ? integer.format(value) : decimal.format(value);
    }

    const labelOf = (key) => key.replace(/_/g, " ");

    // One value from /stats, where `path` is its place in the document.
    function stat(path, value, kind = kindOf(path)) {
      return el("span", {
        class: "value", "data-stat": JSON.stringify(path), "data-value": JSON.stringify(value),
        title: typeof value === "number" ? String(value) : undefined, text: format(value, kind),
      });
    }

    function figure(label, path, value) {
      return el("div", { class: "figure" }, el("span", { class: "label", text: label }), stat(path, value));
    }

    function derivedFigure(label, value, kind) {
      return el("div", { class: "figure derived" }, el("span", { class: "label", text: label }),
                el("span", { class: "value", text: format(value, kind) }));
    }

    // MARK: polling

    async function api(method, path, body) {
      const headers = {};
      if (page.token) headers["Authorization"] = "Bearer " + page.token;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
      try {
        return await fetch(path, { method, headers, cache: "no-store", signal: abort.signal,
                                   body: body === undefined ? undefined : JSON.stringify(body) });
      } finally {
        clearTimeout(timer);
      }
    }

    async function refresh() {
      clearTimeout(page.timer);
      if (page.inFlight || page.signedOut) return;
      page.inFlight = true;
      let stats = null, refused = false;
      try {
        const response = await api("GET", "/stats");
        if (response.status === 401) refused = true;
        else if (!response.ok) throw new Error("HTTP " + response.status);
        else stats = await response.json();
      } catch (error) {
        markDown(error);
      } finally {
        page.inFlight = false;
      }
      if (refused) return showLogin(page.token ? "That token was refused." : "");
      if (stats) {
        markUp();
        record(stats, performance.now());
        render(stats);
        page.refreshes += 1;
        document.body.dataset.refreshes = String(page.refreshes);
      }
      page.timer = setTimeout(refresh, REFRESH_MS);
    }

    function refreshNow() { page.signedOut = false; refresh(); }

    function markUp() {
      page.downSince = null;
      page.lastUpdate = new Date();
      $("status").className = "status up";
      $("status").textContent = "live · updated " + page.lastUpdate.toLocaleTimeString();
      document.body.classList.remove("stale");
    }

    function markDown(error) {
      if (!page.downSince) page.downSince = new Date();
      $("status").className = "status down";
      $("status").textContent = "host not answering since " + page.downSince.toLocaleTimeString() +
        (page.lastUpdate ? " · figures from " + page.lastUpdate.toLocaleTimeString() : "") +
        (error && error.message ? " (" + error.message + ")" : "");
      document.body.classList.add("stale");
    }

    function showLogin(message) {
      page.signedOut = true;
      $("pipelines").replaceChildren();
      page.history.clear();
      $("login").hidden = false;
      $("logout").hidden = true;
      $("login-error").hidden = !message;
      $("login-error").textContent = message || "";
      $("status").className = "status";
      $("status").textContent = "sign in to see this host";
      $("token").focus();
    }

    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      page.token = $("token").value.trim();
      $("token").value = "";
      sessionStorage.setItem(TOKEN_KEY, page.token);
      $("login").hidden = true;
      $("logout").hidden = false;
      refreshNow();
    });

    $("logout").addEventListener("click", () => {
      page.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("");
    });

    function record(stats, now) {
      for (const [name, p] of Object.entries(stats.pipelines || {})) {
        const c = p.connections || {};
        const samples = page.history.get(name) || [];
        const last = samples[samples.length - 1];
        const rate = last && now > last.t ? Math.max(0, (c.total - last.total) * 1000 / (now - last.t)) : 0;
        samples.push({ t: now, total: c.total, active: c.active, rate });
        if (samples.length > HISTORY_SAMPLES) samples.shift();
        page.history.set(name, samples);
      }
    }

    // MARK: drawing

    function render(stats) {
      const cards = Object.entries(stats.pipelines || {}).map(([name, p]) => pipelineCard(name, p));
      if (stats.relay) cards.push(relayCard(stats.relay));
      if (cards.length === 0) cards.push(el("p", { class: "muted", text: "No pipeline is running." }));
      $("pipelines").replaceChildren(...cards);
    }

    function pipelineCard(name, p) {
      const base = ["pipelines", name];
      const listener = p.listener || {};
      const good = listener.state === "listening" || listener.state === "running";
      const samples = page.history.get(name) || [];
      const figures = Object.entries(p.connections || {})
        .filter(([, value]) => typeof value === "number")
        .map(([key, value]) => figure(labelOf(key), [...base, "connections", key], value));
      figures.splice(3, 0, derivedFigure("connections per second", samples.length ? samples[samples.length - 1].rate : 0, "rate"));
      return el("section", { class: "card pipeline", "data-pipeline": name },
        el("div", { class: "card-head" },
          el("h2", { text: name }),
          listener.address ? el("span", { class: "address", text: listener.address }) : null,
          listener.kind ? el("span", { class: "badge", text: listener.kind }) : null,
          listener.state ? el("span", { class: "badge " + (good ? "good" : "bad") }, stat([...base, "listener", "state"], listener.state)) : null),
        el("div", { class: "row" },
          el("div", { class: "figures" }, figures),
          el("div", {}, chart(samples), rejections(base, p.connections || {}))),
        p.reverse ? reverseSection(base, p.reverse) : null,
        el("h3", { text: "Upstreams" }),
        upstreamsTable(name, p),
        el("h3", { text: "Stages" }),
        stagesSection(name, p));
    }

    function chart(samples) {
      const NS = "http://www.w3.org/2000/svg";
      const width = HISTORY_SAMPLES, height = 80;
      const svg = document.createElementNS(NS, "svg");
      svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "chart");
      // Each line on its own scale (a busy listener's rate would flatten its active count).
      const tops = {};
      for (const field of ["rate", "active"]) {
        tops[field] = Math.max(1, Math.ceil(Math.max(...samples.map((s) => s[field]))));
        const line = document.createElementNS(NS, "polyline");
        const offset = width - samples.length;
        line.setAttribute("points", samples.map((s, i) =>
          `${offset + i},${(height - 2 - (s[field] / tops[field]) * (height - 4)).toFixed(1)}`).join(" "));
        line.setAttribute("class", field);
        svg.append(line);
      }
      const seconds = samples.length > 1 ? Math.round((samples[samples.length - 1].t - samples[0].t) / 1000) : 0;
      return el("figure", { class: "chart-box" }, svg,
        el("figcaption", {}, el("span", { class: "key rate", text: `connections/s (top ${format(tops.rate)})` }), " and ",
           el("span", { class: "key active", text: `active (top ${format(tops.active)})` }), ` over the last ${seconds} s`));
    }

    function rejections(base, connections) {
      const reasons = Object.entries(connections.rejected || {});
      if (reasons.length === 0) return el("p", { class: "muted", text: "No connection rejected." });
      return el("table", { class: "rejections" },
        el("thead", {}, el("tr", {}, el("th", { text: "Rejected because" }), el("th", { class: "num", text: "connections" }))),
        el("tbody", {}, reasons.map(([reason, count]) =>
          el("tr", {}, el("td", { text: labelOf(reason) }), el("td", { class: "num" }, stat([...base, "connections", "rejected", reason], count))))));
    }

    const stageOfType = (p, type) => ((p.chain || []).find((s) => s.type === type) || {}).name;

    function upstreamsTable(pipeline, p) {
      const base = ["pipelines", pipeline, "upstreams"];
      const breaker = stageOfType(p, "breaker");
      const circuits = breaker ? ((p.stages || {})[breaker] || {}).upstreams || {} : {};
      const present = new Set();
      const rows = (p.upstreams || []).map((u) => {
        present.add(u.name);
        if (!u.draining) page.drained.delete(pipeline + "/" + u.name);
        const path = [...base, u.name];
        const health = !u.healthy ? ["unhealthy", "bad"] : u.paused ? ["paused", "warn"] : ["healthy", "good"];
        const circuit = circuits[u.name];
        return el("tr", { "data-upstream": u.name },
          el("td", { text: u.name }),
          el("td", { class: "address", text: u.address }),
          el("td", {}, el("span", { class: "badge " + health[1], text: health[0] }), " ",
             u.draining ? el("span", { class: "badge warn", text: "draining" }) : null),
          el("td", {}, circuit ? stat(["pipelines", pipeline, "stages", breaker, "upstreams", u.name, "state"], circuit.state) : "–"),
          el("td", { class: "num" }, stat([...path, "weight"], u.weight)),
          el("td", { class: "num" }, stat([...path, "active"], u.active)),
          el("td", { class: "num" }, stat([...path, "total"], u.total)),
          el("td", { class: "num" }, u.pool ? stat([...path, "pool", "idle"], u.pool.idle) : "–"),
          el("td", { class: "num" }, u.pool ? stat([...path, "pool", "hits"], u.pool.hits) : "–"),
          el("td", { class: "actions" }, upstreamActions(pipeline, u, breaker, circuit)));
      });
      for (const [key, saved] of page.drained) {
        if (!key.startsWith(pipeline + "/") || present.has(saved.name)) continue;
        rows.push(el("tr", { class: "removed", "data-upstream": saved.name },
          el("td", { text: saved.name }), el("td", { class: "address", text: saved.address }),
          el("td", {}, el("span", { class: "badge", text: "drained and removed" })),
          el("td", { text: "–" }), el("td", { class: "num", text: format(saved.weight) }),
          el("td", { text: "" }), el("td", { text: "" }), el("td", { text: "" }), el("td", { text: "" }),
          el("td", { class: "actions" }, removedActions(pipeline, saved))));
      }
      if (rows.length === 0) return el("p", { class: "muted", text: "No upstream." });
      return el("table", { class: "upstreams" },
        el("thead", {}, el("tr", {}, ["upstream", "address", "health", "circuit", "weight", "active", "total",
          "pool idle", "pool hits", ""].map((h, i) => el("th", { class: i >= 4 && i <= 8 ? "num" : undefined, text: h })))),
        el("tbody", {}, rows));
    }

    // A stage's (or a connector's) own figures as [keys, value] rows; an empty list or object is
    // one row with the value `undefined`, drawn as "none".
    function flatten(value, path, into) {
      if (value !== null && typeof value === "object") {
        const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
        if (entries.length === 0) into.push([path, undefined]);
        for (const [key, inner] of entries) flatten(inner, [...path, key], into);
      } else {
        into.push([path, value]);
      }
      return into;
    }

    const none = () => el("span", { class: "muted", text: "none" });

    // A list of records, or an object of records by name (a stage's per-upstream or per-client
    // figures): drawn as a table, one row a record.
    const isRecord = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
    const isTable = (v) => (Array.isArray(v) || isRecord(v)) && Object.keys(v).length > 0 && Object.values(v).every(isRecord);

    function recordTable(path, records) {
      const rows = Object.entries(records).map(([key, record]) => [key, flatten(record, [], []).filter(([, v]) => v !== undefined)]);
      const columns = [...new Set(rows.flatMap(([, cells]) => cells.map(([keys]) => keys.join("."))))];
      return el("table", { class: "records" },
        el("thead", {}, el("tr", {}, el("th", { text: labelOf(path[path.length - 1]) }), columns.map((c) => el("th", { text: labelOf(c) })))),
        el("tbody", {}, rows.map(([key, cells]) => {
          const byColumn = new Map(cells.map(([keys, value]) => [keys.join("."), [keys, value]]));
          // A list's records are ranked (a top-N list), so its first column reads #1, #2, ...
          return el("tr", {}, el("td", { text: Array.isArray(records) ? "#" + (Number(key) + 1) : key }), columns.map((c) => {
            const cell = byColumn.get(c);
            return el("td", {}, cell ? stat([...path, key, ...cell[0]], cell[1]) : "–");
          }));
        })));
    }

    function stagesSection(pipeline, p) {
      const types = new Map((p.chain || []).map((s) => [s.name, s.type]));
      const cards = Object.entries(p.stages || {}).map(([name, stats]) => {
        const base = ["pipelines", pipeline, "stages", name];
        const tables = Object.entries(stats).filter(([, v]) => isTable(v));
        const rest = Object.fromEntries(Object.entries(stats).filter(([, v]) => !isTable(v)));
        const rows = Object.keys(rest).length ? flatten(rest, [], []).slice(0, 80) : [];
        return el("div", { class: "stage", "data-stage": name },
          el("div", { class: "card-head" }, el("strong", { text: name }),
             types.get(name) ? el("span", { class: "badge", text: types.get(name) }) : null,
             el("span", { class: "spacer" }), stageActions(pipeline, name, types.get(name), stats)),
          el("dl", {}, rows.map(([path, value]) => [
            el("dt", { text: path.map(labelOf).join(" · ") }),
            el("dd", {}, value === undefined ? none() : stat([...base, ...path], value)),
          ])),
          tables.map(([key, records]) => el("div", { class: "table-scroll" }, recordTable([...base, key], records))));
      });
      if (cards.length === 0) return el("p", { class: "muted", text: "No stage reports figures." });
      return el("div", { class: "stages" }, cards);
    }

    function reverseSection(base, reverse) {
      const rows = flatten(reverse, [], []);
      return el("div", {}, el("h3", { text: "Reverse tunnel (connector)" }),
        el("div", { class: "figures" }, rows.filter(([, value]) => value !== undefined)
          .map(([path, value]) => figure(path.map(labelOf).join(" · "), [...base, "reverse", ...path], value))));
    }

    function relayCard(relay) {
      const services = Object.entries(relay.services || {});
      const figures = Object.entries(relay).filter(([, v]) => typeof v === "number")
        .map(([key, value]) => figure(labelOf(key), ["relay", key], value));
      return el("section", { class: "card relay" },
        el("div", { class: "card-head" }, el("h2", { text: "Relay" }), el("span", { class: "badge", text: "reverse tunnel" })),
        el("div", { class: "figures" }, figures),
        services.length === 0 ? el("p", { class: "muted", text: "No service declared." }) :
        services.map(([service, s]) => el("div", { "data-service": service },
          el("h3", { text: "Service " + service }),
          el("div", { class: "figures" }, Object.entries(s).filter(([, v]) => typeof v === "number")
            .map(([key, value]) => figure(labelOf(key), ["relay", "services", service, key], value))),
          (s.connectors || []).length === 0 ? el("p", { class: "muted", text: "No connector is connected." }) :
          el("table", {},
            el("thead", {}, el("tr", {}, el("th", { text: "connector" }), el("th", { text: "from" }), el("th", { class: "num", text: "streams" }))),
            el("tbody", {}, s.connectors.map((c, i) => el("tr", {},
              el("td", { text: c.identity }), el("td", { class: "address", text: c.address }),
              el("td", { class: "num" }, stat(["relay", "services", service, "connectors", String(i), "streams"], c.streams)))))))));
    }

    """#
}
