// 家和工作台: the little the pages need beyond htmx, no inline scripts (the CSP forbids them).
(function () {
  "use strict";
  // A button with data-confirm asks first (reject, merge, disable…).
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); ev.stopPropagation(); }
  }, true);
  // A checkbox with data-select-all toggles every checkbox named by its value in its form.
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (!el.matches || !el.matches("[data-select-all]")) { return; }
    var form = el.closest("form");
    if (!form) { return; }
    form.querySelectorAll('input[type=checkbox][name="' + el.getAttribute("data-select-all") + '"]').forEach(function (box) { box.checked = el.checked; });
  });
  // A print button.
  document.addEventListener("click", function (ev) {
    if (ev.target.closest("[data-print]")) { ev.preventDefault(); window.print(); }
  });
  // Charts: every element with data-chart names a <script type="application/json"> with an
  // ECharts option; drawn once ECharts (loaded only by the pages that chart) is there.
  function drawCharts(root) {
    if (!window.echarts) { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.getAttribute("data-drawn")) { return; }
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) { return; }
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(JSON.parse(src.textContent));
      el.setAttribute("data-drawn", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { drawCharts(ev.target); });
})();
