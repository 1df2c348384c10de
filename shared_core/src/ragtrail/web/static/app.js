// ragtrail web view: keyboard navigation and the usage charts. No inline script anywhere
// (the Content-Security-Policy forbids it); stored values are never inserted as HTML here.
(function () {
  "use strict";

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll(".nav-list .nav-item"));
  }

  function current(list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].classList.contains("selected")) return i;
    }
    return -1;
  }

  function select(list, index) {
    if (!list.length) return;
    index = Math.max(0, Math.min(list.length - 1, index));
    list.forEach(function (el) { el.classList.remove("selected"); });
    var el = list[index];
    el.classList.add("selected");
    el.scrollIntoView({ block: "nearest" });
  }

  function open(el) {
    if (!el) return;
    var link = el.querySelector("a.run-link");
    if (link) { link.click(); return; }
    var href = el.getAttribute("data-href");
    if (href && href.charAt(0) === "/") window.location.assign(href);
  }

  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var list = items();
    var at = current(list);
    if (event.key === "j" || event.key === "ArrowDown") {
      select(list, at + 1); if (list[at + 1] && list[at + 1].querySelector("a.run-link")) open(list[at + 1]);
      event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(list, at - 1); if (at > 0 && list[at - 1].querySelector("a.run-link")) open(list[at - 1]);
      event.preventDefault();
    } else if (event.key === "Enter") {
      if (at >= 0) { open(list[at]); event.preventDefault(); }
    } else if (event.key === "/") {
      var q = document.getElementById("filter-q");
      if (q) { q.focus(); event.preventDefault(); }
    } else if (event.key === "g") {
      window.location.assign("/traces");
    } else if (event.key === "l") {
      var lineage = document.getElementById("lineage-link");
      if (lineage) lineage.click();
    }
  });

  // Clicking a table row opens it (the row's own links keep working).
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!target || target.closest("a, button, input, select, summary, pre")) return;
    var row = target.closest("tr.nav-item[data-href]");
    if (row) open(row);
  });

  // After htmx loads a run into the panel, mark that run selected in the waterfall.
  document.addEventListener("htmx:afterSwap", function () {
    var panel = document.getElementById("run-panel");
    var wanted = new URL(window.location.href).searchParams.get("run");
    if (!panel || !wanted) return;
    items().forEach(function (el) {
      el.classList.toggle("selected", el.getAttribute("data-run") === wanted);
    });
  });

  function charts() {
    var holder = document.getElementById("usage-data");
    if (!holder || typeof window.Chart === "undefined") return;
    var data = JSON.parse(holder.textContent || "{}");
    var style = getComputedStyle(document.documentElement);
    var fg = style.getPropertyValue("--fg").trim();
    var line = style.getPropertyValue("--line").trim();
    var palette = ["--k-llm", "--k-retriever", "--k-reranker", "--k-embedding", "--k-tool",
                   "--k-agent", "--accent", "--warn"].map(function (name) {
      return style.getPropertyValue(name).trim();
    });
    window.Chart.defaults.color = fg;
    window.Chart.defaults.borderColor = line;
    function draw(id, field, label, money) {
      var canvas = document.getElementById(id);
      if (!canvas) return;
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: data.days,
          datasets: data.series.map(function (s, i) {
            return { label: s.model, data: s[field], backgroundColor: palette[i % palette.length] };
          })
        },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true,
                    title: { display: true, text: label },
                    ticks: money ? { callback: function (v) { return "$" + Number(v).toPrecision(2); } } : {} } }
        }
      });
    }
    draw("chart-tokens", "tokens", "tokens");
    draw("chart-cost", "cost", "cost (priced calls)", true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = items();
    if (list.length && current(list) < 0 && !document.querySelector(".run-row")) select(list, 0);
    charts();
  });
})();
