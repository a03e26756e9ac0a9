// imagenet-think view: keyboard shortcuts, auto-applying filters, class suggestions and copy
// buttons. The pages work without it (the class box is then a plain form field).
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
    var box = form.querySelector("input[name=class]");
    var options = document.getElementById("class-options");
    var asked = "";
    var timer = null;
    // suggestions from /api/classes as the user types; picking one (a value ending in its wnid) applies it
    var suggest = function () {
      var text = box.value.trim();
      if (text === asked) { return; }
      asked = text;
      fetch("/api/classes?limit=20&q=" + encodeURIComponent(text), { headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (found) {
          if (found.q !== box.value.trim()) { return; }  // the user typed on meanwhile
          options.replaceChildren.apply(options, (found.classes || []).map(function (match) {
            var option = document.createElement("option");
            option.value = match.option;
            // the value names the class (characters that do not print escaped); the label adds what tells classes apart
            var notes = [match.kind_of ? "a kind of " + match.kind_of : "", match.records ? match.records + " records" : ""];
            var label = notes.filter(Boolean).join(" · ");
            if (label) { option.label = label; }
            return option;
          }));
        })
        .catch(function () { asked = ""; });
    };
    if (box && options) {
      box.addEventListener("input", function () {
        var picked = Array.prototype.some.call(options.options, function (o) { return o.value === box.value; });
        if (picked && /\bn[0-9]{8}$/.test(box.value)) { form.submit(); return; }
        clearTimeout(timer);
        timer = setTimeout(suggest, 150);
      });
      box.addEventListener("focus", suggest);
    }
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      field.select();
      var done = function () { button.textContent = "copied"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); }); }
      else { document.execCommand("copy"); done(); }
    });
  });
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
