// The event map: the city's own cells and district outlines (from the spatial base, no tiles),
// drawn with Apache ECharts' geo component; the events in view fetched as GeoJSON for the
// visible box whenever the map is panned or zoomed (the box and filters are applied in SQL).
(function () {
  "use strict";
  var box = document.getElementById("gridmap");
  if (!box || !window.echarts) return;
  var labels = JSON.parse(box.dataset.labels);
  var count = document.getElementById("gridmap-count");
  var chart = echarts.init(box, null, {
    renderer: "canvas",
    locale: document.documentElement.lang === "en" ? "EN" : "ZH",
  });
  var COLOURS = { open: "#2b7bb9", closed: "#8aa5a5", overdue: "#c62828", cluster: "#e69b2b" };
  var CLOSED = { closed: true, voided: true };
  var districts = [];
  var pending = null;

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (answer) {
      if (!answer.ok) throw new Error(url + " → " + answer.status);
      return answer.json();
    });
  }

  // Each district's outline and name, drawn in the geo's coordinates so they follow the roam.
  function outline(params, api) {
    var feature = districts[params.dataIndex];
    var geometry = feature.geometry;
    var polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    var children = polygons.map(function (rings) {
      return {
        type: "polygon",
        shape: { points: rings[0].map(function (c) { return api.coord(c); }) },
        style: { fill: "none", stroke: "#58718a", lineWidth: 1.5 },
        silent: true,
      };
    });
    var at = api.coord(feature.properties.label_at);
    children.push({
      type: "text",
      x: at[0],
      y: at[1],
      silent: true,
      style: {
        text: feature.properties.name,
        fill: "#1f2d3a",
        stroke: "#fff",
        lineWidth: 3,
        font: "bold 13px sans-serif",
        align: "center",
        verticalAlign: "middle",
      },
    });
    return { type: "group", children: children };
  }

  function colour(p) {
    if (p.count !== undefined) return p.overdue > 0 ? COLOURS.overdue : COLOURS.cluster;
    if (p.overdue) return COLOURS.overdue;
    return CLOSED[p.status] ? COLOURS.closed : COLOURS.open;
  }

  function visibleBox() {
    var w = chart.getWidth(), h = chart.getHeight();
    var sw = chart.convertFromPixel({ geoIndex: 0 }, [0, h]);
    var ne = chart.convertFromPixel({ geoIndex: 0 }, [w, 0]);
    var west = Math.max(-180, sw[0]), south = Math.max(-90, sw[1]);
    var east = Math.min(180, ne[0]), north = Math.min(90, ne[1]);
    return [west, south, east, north].map(function (v) { return v.toFixed(5); }).join(",");
  }

  function loadEvents() {
    var url = box.dataset.events + "?bbox=" + visibleBox() + "&" + box.dataset.query;
    var asked = (pending = url);
    box.dataset.state = "loading";
    getJSON(url).then(function (found) {
      if (asked !== pending) return; // a later pan asked again: its answer wins
      var points = found.features.map(function (f) {
        var p = f.properties;
        return {
          value: f.geometry.coordinates,
          properties: p,
          href: p.event_no ? "/grid/events/" + encodeURIComponent(p.event_no) : "",
          symbolSize: p.count !== undefined ? 6 + Math.sqrt(Math.min(p.count, 400)) * 1.6 : 8,
          itemStyle: { color: colour(p) },
        };
      });
      chart.setOption({ series: [{ id: "events", data: points }] });
      box.dataset.points = String(points.length);
      box.dataset.clustered = String(Boolean(found.clustered));
      box.dataset.state = "ready";
      count.textContent = found.clustered
        ? labels.clustered
        : points.length + " " + labels.events;
    }).catch(function (error) {
      box.dataset.state = "failed";
      count.textContent = labels.failed + "（" + error.message + "）";
    });
  }

  function tooltip(item) {
    if (item.componentType === "geo") {
      var name = item.name || (item.region && item.region.name) || "";
      return name ? escape(cells[name] || name) + "<br>" + escape(name) : "";
    }
    var p = item.data && item.data.properties;
    if (!p) return "";
    if (p.count !== undefined) {
      return escape(cells[p.grid_code] || p.grid_code) + "<br>" + p.count + " " + labels.events +
        "，" + labels.overdue + " " + p.overdue;
    }
    return escape(p.event_no) + "<br>" + escape(p.category_name) + " · " + escape(p.status_name) +
      (p.overdue ? " · <b>" + labels.overdue + "</b>" : "");
  }

  function escape(text) {
    var span = document.createElement("span");
    span.textContent = String(text);
    return span.innerHTML;
  }

  var cells = {};
  Promise.all([getJSON(box.dataset.cells), getJSON(box.dataset.districts)]).then(function (both) {
    both[0].features.forEach(function (f) {
      cells[f.properties.grid_code] = f.properties.name;
    });
    districts = both[1].features;
    echarts.registerMap("citygrid", both[0]);
    var focus = box.dataset.bbox ? box.dataset.bbox.split(",").map(Number) : null;
    chart.setOption({
      animation: false,
      tooltip: { trigger: "item", formatter: tooltip, confine: true },
      geo: {
        map: "citygrid",
        nameProperty: "grid_code",
        roam: true,
        scaleLimit: { min: 0.8, max: 200 },
        boundingCoords: focus ? [[focus[0], focus[3]], [focus[2], focus[1]]] : null,
        itemStyle: { areaColor: "#eef3f7", borderColor: "#c5d0da", borderWidth: 0.5 },
        emphasis: { itemStyle: { areaColor: "#dce8f2" }, label: { show: false } },
        select: { disabled: true },
        label: { show: false },
        tooltip: { show: true, formatter: tooltip },
      },
      series: [
        {
          id: "districts",
          type: "custom",
          coordinateSystem: "geo",
          renderItem: outline,
          data: districts.map(function (f) { return f.properties.label_at; }),
          silent: true,
          z: 5, // outlines and names above the points
        },
        { id: "events", type: "scatter", coordinateSystem: "geo", data: [], z: 4 },
      ],
    });
    chart.on("click", function (item) {
      if (item.seriesId === "events" && item.data.href) window.location.href = item.data.href;
    });
    var timer = null;
    chart.on("georoam", function () {
      clearTimeout(timer);
      timer = setTimeout(loadEvents, 250);
    });
    window.addEventListener("resize", function () { chart.resize(); });
    loadEvents();
  }).catch(function (error) {
    box.dataset.state = "failed";
    count.textContent = labels.failed + "（" + error.message + "）";
  });
})();
