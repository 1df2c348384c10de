// ragtrail web view: the drift page's distribution charts (baseline against current
// window, as shares of each window's sample). Data comes from a JSON script element.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.getElementById("drift-data");
    if (!holder || typeof window.Chart === "undefined") return;
    var charts = JSON.parse(holder.textContent || "[]");
    var style = getComputedStyle(document.documentElement);
    window.Chart.defaults.color = style.getPropertyValue("--fg").trim();
    window.Chart.defaults.borderColor = style.getPropertyValue("--line").trim();
    var colours = [style.getPropertyValue("--k-retriever").trim(),
                   style.getPropertyValue("--warn").trim()];
    function shares(counts) {
      var total = counts.reduce(function (a, b) { return a + b; }, 0) || 1;
      return counts.map(function (c) { return c / total; });
    }
    charts.forEach(function (chart) {
      var canvas = document.getElementById(chart.id);
      if (!canvas) return;
      var labels = chart.edges.slice(0, -1).map(function (e) { return Number(e).toPrecision(3); });
      new window.Chart(canvas, {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "baseline", data: shares(chart.baseline), backgroundColor: colours[0] },
          { label: "current", data: shares(chart.current), backgroundColor: colours[1] }] },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
                   scales: { y: { beginAtZero: true, title: { display: true, text: "share" } },
                             x: { title: { display: true, text: chart.name } } } }
      });
    });
  });
})();
