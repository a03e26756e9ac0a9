// imagenet-think view: keyboard shortcuts and auto-applying filters. The pages work without it.
"use strict";
(function () {
  function follow(rel) {
    var link = document.querySelector('a[rel="' + rel + '"]');
    if (link) { window.location.href = link.href; }
  }
  var form = document.querySelector("form.filters");
  if (form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) { return; }
    if (event.key === "ArrowLeft" || event.key === "k") { follow("prev"); }
    else if (event.key === "ArrowRight" || event.key === "j") { follow("next"); }
    else if (event.key === "u" || event.key === "Escape") { follow("up"); }
    else if (event.key === "/" && form) { event.preventDefault(); form.querySelector("input[type=search]").focus(); }
    else if (event.key === "e") {
      var all = document.querySelectorAll("details.reasoning");
      var open = !Array.prototype.every.call(all, function (d) { return d.open; });
      all.forEach(function (d) { d.open = open; });
    }
  });
})();
