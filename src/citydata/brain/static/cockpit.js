// The cockpit: every tile drawn from the payload the page carries (no second request), its
// timing — the summary query's, the read's, this drawing's — and its as-of time on hover and in
// its footer; every figure clickable down to its rows. The page then asks, no faster than the
// server refreshes summaries, which tiles have a newer summary, and fetches only those. On the
// big screen a fixed 1920×1080 stage is scaled to the display.
(function () {
  "use strict";
  var root = document.getElementById("cockpit");
  if (!root || !window.CityCharts) return;
  var labels = JSON.parse(root.dataset.labels);
  var dark = root.dataset.theme === "dark";
  var english = document.documentElement.lang === "en";
  var stage = document.getElementById("stage");
  var charts = {};
  var versions = {};

  function beijing(iso) {
    if (!iso) return "—";
    var parts = new Intl.DateTimeFormat("zh-CN", {
      timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false,
    }).formatToParts(new Date(iso));
    var p = {};
    parts.forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }

  function timingText(tile, renderMs) {
    var t = tile.timing;
    var source = t.from_summary ? labels.from_summary : labels.computed;
    var words = [
      labels.query + " " + t.query_ms.toFixed(1) + " ms" + (english ? " (" + source + ")" : "（" + source + "）"),
      labels.read + " " + t.read_ms.toFixed(1) + " ms",
      labels.render + " " + renderMs.toFixed(1) + " ms",
      labels.as_of + " " + beijing(t.as_of),
    ];
    if (t.stale) words.push(labels.stale);
    return words.join(" · ");
  }

  function render(box, tile) {
    var started = performance.now();
    var chart = CityCharts.draw(
      {
        chart: box.querySelector(".chart"),
        figures: box.querySelector(".figures"),
        rows: box.querySelector(".rows"),
      },
      tile.payload,
      tile.drill,
      { dark: dark, definitions: tile.figure_definitions, emptyText: labels.empty, still: Boolean(stage) }
    );
    var spent = performance.now() - started;
    charts[tile.tile] = chart;
    versions[tile.tile] = tile.version;
    box.dataset.version = tile.version;
    box.dataset.renderMs = spent.toFixed(2);
    box.dataset.queryMs = String(tile.timing.query_ms);
    box.dataset.fromSummary = String(tile.timing.from_summary);
    box.dataset.asOf = tile.timing.as_of;
    box.dataset.state = "ready";
    var text = timingText(tile, spent);
    box.title = text;
    var footer = box.querySelector(".timing");
    if (footer) footer.textContent = text;
    var asOf = box.querySelector(".asof");
    if (asOf) asOf.textContent = labels.as_of + " " + beijing(tile.timing.as_of);
  }

  function drawAll() {
    document.querySelectorAll(".tile[data-tile]").forEach(function (box) {
      try {
        render(box, JSON.parse(box.dataset.payload));
      } catch (error) {
        box.dataset.state = "failed";
        box.title = String(error);
      }
    });
    root.dataset.state = "ready";
    root.dataset.readyMs = performance.now().toFixed(1);
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (answer) {
      if (!answer.ok) throw new Error(url + " → " + answer.status);
      return answer.json();
    });
  }

  // Ask which summaries moved; fetch those tiles alone.
  function poll() {
    getJSON(root.dataset.versions).then(function (now) {
      Object.keys(now).forEach(function (name) {
        if (versions[name] === undefined || versions[name] === now[name]) return;
        var box = document.getElementById("tile-" + name);
        if (!box) return;
        getJSON(root.dataset.tileUrl.replace("{name}", encodeURIComponent(name))).then(function (tile) {
          box.dataset.payload = JSON.stringify(tile);
          render(box, tile);
          root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
        });
      });
    }).catch(function () { /* the next round asks again */ });
  }

  function fit() {
    if (stage) {
      var scale = Math.min(window.innerWidth / 1920, window.innerHeight / 1080);
      var left = (window.innerWidth - 1920 * scale) / 2;
      var top = (window.innerHeight - 1080 * scale) / 2;
      stage.style.transform = "translate(" + left + "px, " + top + "px) scale(" + scale + ")";
      stage.dataset.scale = scale.toFixed(4);
    }
    Object.keys(charts).forEach(function (name) {
      try { if (charts[name]) charts[name].resize(); } catch (e) { /* drawn again next time */ }
    });
  }

  function start(geojson) {
    if (geojson) echarts.registerMap("districts", geojson);
    fit();
    drawAll();
    window.addEventListener("resize", fit);
    var every = Math.max(10, Number(root.dataset.refresh) || 60) * 1000;
    window.setInterval(poll, every);
  }

  var needsMap = document.querySelector('.tile[data-kind="map"]');
  if (needsMap) {
    getJSON(root.dataset.geo).then(start).catch(function () { start(null); });
  } else {
    start(null);
  }
})();
