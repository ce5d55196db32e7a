// Charts from payloads: a payload says what to draw (its kind, the categories with their codes,
// the series, the targets) and this turns it into an Apache ECharts option, or into plain HTML
// for figures. The cockpit's tiles and the domains' pages (a unit's, a class's, a batch's
// picture) all draw through it. Names are shown, codes are kept as keys (for drill-downs and in
// tooltips); counts read in 万 and 亿. No inline script or style is needed: an element carries
// its payload in data-chart (or a URL in data-chart-src) and is drawn when the page loads.
(function () {
  "use strict";
  var lang = document.documentElement.lang === "en" ? "en" : "zh";
  var PALETTE = ["#2f6fde", "#e0702f", "#2fa37b", "#c43d63", "#8c62d9", "#d2a31f", "#4aa3c9",
    "#7a8a99", "#9bbf3f", "#b8594c"];

  function number(value, unit) {
    if (value === null || value === undefined || value === "") return "—";
    if (unit === "rate") return (value * 100).toFixed(1) + "%";
    if (unit === "score") return Number(value).toFixed(1);
    if (unit === "ms") return Number(value).toFixed(1) + " ms";
    var n = Number(value);
    var steps = lang === "zh" ? [[1e8, "亿"], [1e4, "万"]] : [[1e9, " B"], [1e6, " M"], [1e3, " K"]];
    for (var i = 0; i < steps.length; i++) {
      var size = steps[i][0];
      if (Math.abs(n) >= size) {
        var digits = Math.abs(n) < size * 10 ? 2 : 1;
        return String(Number((n / size).toFixed(digits))) + steps[i][1];
      }
    }
    return n === Math.round(n) ? String(n) : n.toFixed(1);
  }

  function escape(text) {
    var span = document.createElement("span");
    span.textContent = text === null || text === undefined ? "" : String(text);
    return span.innerHTML;
  }

  function element(tag, className, text) {
    var found = document.createElement(tag);
    if (className) found.className = className;
    if (text !== undefined) found.textContent = text;
    return found;
  }

  // A drill-down target: {key}, {series} and any field of the clicked item filled in; nothing
  // when a part is unknown (the 其他单位 slice has no page of its own).
  function target(template, fields) {
    if (!template) return "";
    var missing = false;
    var url = template.replace(/\{(\w+)\}/g, function (_, name) {
      var value = fields[name];
      if (value === undefined || value === null || value === "") missing = true;
      return encodeURIComponent(value === undefined || value === null ? "" : value);
    });
    return missing ? "" : url;
  }

  function drillOf(drill, part) {
    if (!drill) return "";
    if (typeof drill === "string") return part === "row" ? "" : drill;
    return drill[part] || "";
  }

  // ------------------------------------------------------------ figures (HTML, not canvas)

  function figuresInto(box, payload, drill, definitions) {
    box.textContent = "";
    (payload.figures || []).forEach(function (f) {
      var unit = f.unit || payload.unit || "count";
      var row = element("div", "fig" + (f.alert ? " alert" : ""));
      row.dataset.key = f.key;
      row.dataset.value = f.value === null ? "" : String(f.value);
      if (f.target !== undefined) row.dataset.target = String(f.target);
      var label = element("span", "label", f.label);
      var value = element("span", "value", number(f.value, unit));
      if (f.target !== undefined) value.appendChild(element("small", "target", " / " + number(f.target, unit)));
      var href = typeof drill === "object" && drill ? drill[f.key] : "";
      var holder = href ? element("a", "fig-link") : element("span", "fig-link");
      if (href) holder.href = href;
      holder.appendChild(label);
      holder.appendChild(value);
      row.appendChild(holder);
      if (payload.kind === "progress" && f.target !== undefined && f.value !== null) {
        row.appendChild(meter(f.value, f.target, unit));
      }
      var words = (definitions && definitions[f.key]) || (typeof f.note === "string" ? f.note : "");
      if (definitions && definitions[f.key] && typeof f.note === "string") words += " " + f.note;
      if (words) row.appendChild(element("p", "fig-note", words));
      box.appendChild(row);
    });
  }

  // A bar as SVG with its length as an attribute (the page's policy lets no style attribute in).
  function meter(value, goal, unit) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "meter");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    var scale = unit === "rate" ? 1 : Math.max(value, goal) || 1;
    var track = document.createElementNS(ns, "rect");
    track.setAttribute("class", "track");
    track.setAttribute("width", "100");
    track.setAttribute("height", "10");
    var fill = document.createElementNS(ns, "rect");
    fill.setAttribute("class", value >= goal ? "fill met" : "fill");
    fill.setAttribute("width", String(Math.min(100, (100 * value) / scale).toFixed(2)));
    fill.setAttribute("height", "10");
    var mark = document.createElementNS(ns, "rect");
    mark.setAttribute("class", "goal");
    mark.setAttribute("x", String(Math.min(99.5, (100 * goal) / scale).toFixed(2)));
    mark.setAttribute("width", "0.8");
    mark.setAttribute("height", "10");
    svg.appendChild(track);
    svg.appendChild(fill);
    svg.appendChild(mark);
    return svg;
  }

  function rowsInto(box, payload, drill) {
    box.textContent = "";
    if (!payload.rows || !payload.rows.length) return;
    var table = element("table", "list compact");
    var head = element("tr");
    (payload.columns || []).forEach(function (c) { head.appendChild(element("th", "", c)); });
    table.appendChild(element("thead")).appendChild(head);
    var body = element("tbody");
    var template = drillOf(drill, "row");
    payload.rows.forEach(function (r) {
      var tr = element("tr");
      tr.dataset.key = r.key;
      r.cells.forEach(function (c, i) {
        var td = element("td");
        var href = i === 0 ? target(template, { key: r.key }) : "";
        if (href) {
          var a = element("a", "", String(c));
          a.href = href;
          a.title = r.key;
          td.appendChild(a);
        } else {
          td.textContent = typeof c === "number" ? number(c) : String(c);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(table);
  }

  // ------------------------------------------------------------ ECharts options

  function valueAxis(unit, extra) {
    var axis = {
      type: "value",
      axisLabel: { formatter: function (v) { return number(v, unit); } },
      splitLine: { lineStyle: { opacity: 0.35 } },
    };
    if (unit === "rate") {
      // rates near the 97 % target: start the axis just below the lowest, not at zero
      axis.max = 1;
      axis.min = function (range) {
        return range.min > 0.5 ? Math.max(0, Math.floor(range.min * 20) / 20 - 0.05) : 0;
      };
    }
    return Object.assign(axis, extra || {});
  }

  function seriesOption(payload) {
    var unit = payload.unit || "count";
    var horizontal = payload.kind === "hbar";
    var category = {
      type: "category",
      data: payload.x,
      axisLabel: {
        interval: 0,
        hideOverlap: !horizontal,
        rotate: !horizontal && (payload.x || []).length > 5 && payload.kind !== "line" ? 30 : 0,
      },
      inverse: horizontal,
    };
    var second = (payload.series || []).some(function (s) { return s.axis === 1; });
    var units = payload.axis_units || [unit, "count"];
    var values = [valueAxis(units[0], payload.max ? { max: payload.max } : {})];
    if (second) values.push(valueAxis(units[1], { splitLine: { show: false } }));
    if (payload.axes) values.forEach(function (a, i) { a.name = payload.axes[i]; });
    var series = (payload.series || []).map(function (s, i) {
      var drawn = {
        id: "s" + i,
        name: s.name,
        type: s.type === "line" || payload.kind === "line" ? "line" : "bar",
        data: s.data,
        stack: payload.kind === "stack" || s.stack ? s.stack || "all" : undefined,
        emphasis: { focus: "series" },
        barMaxWidth: 28,
      };
      if (drawn.type === "line") { drawn.smooth = false; drawn.symbolSize = 6; drawn.showSymbol = true; }
      if (s.axis === 1) drawn[horizontal ? "xAxisIndex" : "yAxisIndex"] = 1;
      return drawn;
    });
    if (payload.target !== undefined && series.length) {
      series[0].markLine = {
        silent: true,
        symbol: "none",
        lineStyle: { type: "dashed", color: "#c62828" },
        label: { formatter: number(payload.target, unit), position: "insideEndTop" },
        data: [horizontal ? { xAxis: payload.target } : { yAxis: payload.target }],
      };
    }
    var option = {
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      legend: { type: "scroll", top: 0 },
      tooltip: {
        trigger: "axis",
        axisPointer: { type: "shadow" },
        formatter: function (items) {
          var head = escape(items.length ? items[0].axisValueLabel : "");
          var key = items.length ? (payload.keys || [])[items[0].dataIndex] : "";
          if (key && key !== items[0].axisValueLabel) head += ' <span class="code">' + escape(key) + "</span>";
          return [head].concat(items.map(function (i) {
            var s = payload.series[i.seriesIndex] || {};
            return i.marker + escape(i.seriesName) + "：" + number(i.value, units[s.axis === 1 ? 1 : 0]);
          })).join("<br>");
        },
      },
      xAxis: horizontal ? values : category,
      yAxis: horizontal ? category : values,
      series: series,
    };
    return option;
  }

  function pieOption(payload) {
    var unit = payload.unit || "count";
    return {
      tooltip: {
        trigger: "item",
        formatter: function (p) { return escape(p.name) + "：" + number(p.value, unit) + "（" + p.percent + "%）"; },
      },
      legend: { type: "scroll", orient: "vertical", right: 0, top: "middle" },
      series: [{
        id: "s0",
        type: "pie",
        radius: ["38%", "68%"],
        center: ["38%", "52%"],
        data: (payload.items || []).map(function (i) { return { name: i.name, value: i.value, key: i.key }; }),
        label: { formatter: "{b}" },
      }],
    };
  }

  function sankeyOption(payload) {
    var names = {};
    (payload.nodes || []).forEach(function (n) { names[n.id] = n.name; });
    return {
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.dataType === "edge") {
            return escape(names[p.data.source]) + " → " + escape(names[p.data.target]) + "：" + number(p.data.value);
          }
          return escape(names[p.name] || p.name);
        },
      },
      series: [{
        id: "s0",
        type: "sankey",
        left: 8,
        right: 80,
        top: 8,
        bottom: 8,
        nodeGap: 10,
        emphasis: { focus: "adjacency" },
        data: (payload.nodes || []).map(function (n) { return { name: n.id, key: n.key }; }),
        links: payload.links || [],
        label: { formatter: function (p) { return names[p.name] || p.name; } },
        lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 },
      }],
    };
  }

  function mapOption(payload, dark) {
    var unit = payload.unit || "count";
    var regions = payload.regions || [];
    var top = regions.reduce(function (m, r) { return Math.max(m, r.value || 0); }, 0);
    return {
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          var r = p.data;
          if (!r) return escape(p.name);
          var lines = [escape(r.label) + "：" + number(r.value, unit)];
          Object.keys(r.details || {}).forEach(function (k) {
            lines.push(escape(k) + " " + number(r.details[k], unit));
          });
          return lines.join("<br>");
        },
      },
      visualMap: {
        min: 0,
        max: top || 1,
        left: 0,
        bottom: 0,
        calculable: false,
        itemHeight: 80,
        text: [number(top, unit), "0"],
        inRange: { color: dark ? ["#12325a", "#2f8fff", "#8ef0ff"] : ["#e8f0fb", "#6fa3e8", "#1b4f9c"] },
        textStyle: { color: dark ? "#cfe3ff" : "#334" },
      },
      series: [{
        id: "s0",
        type: "map",
        map: payload.map || "districts",
        nameProperty: "division",
        roam: false,
        selectedMode: false,
        label: {
          show: true,
          formatter: function (p) { return (p.data && p.data.label) || ""; },
          fontSize: 11,
          color: dark ? "#e8f4ff" : "#1f2d3a",
        },
        itemStyle: { borderColor: dark ? "#5dd0ff" : "#58718a", borderWidth: 1 },
        emphasis: { label: { show: true }, itemStyle: { areaColor: dark ? "#f6c343" : "#ffd27a" } },
        data: regions.map(function (r) {
          return { name: r.key, value: r.value, label: r.name, key: r.key, details: r.details, bbox: r.bbox };
        }),
      }],
    };
  }

  function option(payload, dark) {
    switch (payload.kind) {
      case "pie": return pieOption(payload);
      case "sankey": return sankeyOption(payload);
      case "map": return mapOption(payload, dark);
      default: return seriesOption(payload);
    }
  }

  var CANVAS = { bar: 1, hbar: 1, stack: 1, line: 1, pie: 1, sankey: 1, map: 1 };

  function empty(payload) {
    if (payload.kind === "map") return !(payload.regions || []).length;
    if (payload.kind === "pie") return !(payload.items || []).length;
    if (payload.kind === "sankey") return !(payload.links || []).length;
    if (CANVAS[payload.kind]) {
      return !(payload.series || []).some(function (s) {
        return (s.data || []).some(function (v) { return v; });
      });
    }
    return false;
  }

  // Draw ``payload`` into ``parts`` ({chart, figures, rows}); returns the ECharts instance (or
  // null for HTML-only kinds). ``drill`` is the tile's target(s).
  function draw(parts, payload, drill, settings) {
    settings = settings || {};
    if (parts.figures) figuresInto(parts.figures, payload, drill, settings.definitions);
    if (parts.rows) rowsInto(parts.rows, payload, drill);
    var box = parts.chart;
    if (!box) return null;
    if (!CANVAS[payload.kind]) {
      box.hidden = true;
      return null;
    }
    box.hidden = false;
    if (empty(payload)) {
      var old = window.echarts && echarts.getInstanceByDom(box);
      if (old) old.dispose();
      box.textContent = "";
      box.appendChild(element("p", "empty", payload.empty || settings.emptyText || "—"));
      box.dataset.empty = "true";
      return null;
    }
    box.dataset.empty = "false";
    if (box.firstChild && box.firstChild.className === "empty") box.textContent = "";
    var chart = echarts.getInstanceByDom(box) || echarts.init(box, settings.dark ? "dark" : null, {
      renderer: "canvas",
      locale: lang === "en" ? "EN" : "ZH",
    });
    var drawn = option(payload, settings.dark);
    drawn.color = PALETTE;
    drawn.animation = !settings.still;
    if (settings.dark) drawn.backgroundColor = "transparent";
    chart.setOption(drawn, true);
    chart.off("click");
    chart.on("click", function (item) {
      var fields = {};
      if (payload.kind === "map" || payload.kind === "pie" || payload.kind === "sankey") {
        if (!item.data || item.dataType === "edge") return;
        fields = Object.assign({}, item.data);
      } else {
        var s = payload.series[item.seriesIndex] || {};
        fields = { key: (payload.keys || [])[item.dataIndex], series: s.key };
      }
      var url = target(drillOf(drill, "item"), fields);
      if (url) window.location.href = url;
    });
    return chart;
  }

  function autodraw(box, payload) {
    var drill = box.dataset.drill ? JSON.parse(box.dataset.drill) : "";
    var chart = draw({ chart: box }, payload, drill, { still: true });
    box.dataset.state = "ready";
    if (chart) window.addEventListener("resize", function () { chart.resize(); });
  }

  // Elements outside the cockpit that carry their own payload, or where to fetch it.
  function start() {
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      autodraw(box, JSON.parse(box.dataset.chart));
    });
    document.querySelectorAll("[data-chart-src]").forEach(function (box) {
      fetch(box.dataset.chartSrc, { credentials: "same-origin" })
        .then(function (answer) {
          if (!answer.ok) throw new Error(String(answer.status));
          return answer.json();
        })
        .then(function (payload) { autodraw(box, payload); })
        .catch(function () { box.dataset.state = "failed"; });
    });
  }

  window.CityCharts = { draw: draw, number: number, target: target, escape: escape };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
