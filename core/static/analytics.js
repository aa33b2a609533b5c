// Draws the analytics charts from the JSON the page carries (no inline script: the console CSP is 'self' only).
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("chart-data");
    if (!el || typeof Chart === "undefined") { return; }
    var data = JSON.parse(el.textContent);
    var palette = ["#1f618d", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#17a589", "#5d6d7e", "#a04000"];
    var vol = data.volume, i = 0;
    var sets = Object.keys(vol.series).slice(0, 8).map(function (k) {
      var c = palette[i++ % palette.length];
      return { label: k, data: vol.series[k], borderColor: c, backgroundColor: c, tension: 0.2 };
    });
    new Chart(document.getElementById("chart-volume"), { type: "line", data: { labels: vol.labels, datasets: sets },
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    function bars(id, pairs, label) {
      var canvas = document.getElementById(id);
      if (!canvas) { return; }
      new Chart(canvas, { type: "bar", data: { labels: pairs.map(function (p) { return p[0]; }),
        datasets: [{ label: label, data: pairs.map(function (p) { return p[1]; }), backgroundColor: "#1f618d" }] },
        options: { animation: false, indexAxis: "y", plugins: { legend: { display: false } } } });
    }
    bars("chart-opd", data.opd, "Laporan");
    var b = data.backlog, rows = Object.keys(b.rows);
    var canvas = document.getElementById("chart-backlog");
    if (canvas) {
      new Chart(canvas, { type: "bar", data: { labels: rows, datasets: b.labels.map(function (lb, j) {
        return { label: lb, data: rows.map(function (r) { return b.rows[r][j]; }), backgroundColor: palette[j % palette.length] };
      }) }, options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } } } });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
