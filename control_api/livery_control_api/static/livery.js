// Progressive enhancements of the server-rendered pages; every form also works without them.
(function () {
  "use strict";

  // Signup: check the instance name as the user types, with a short pause between requests.
  var nameInput = document.querySelector("[data-name-check]");
  if (nameInput) {
    var output = document.getElementById("tenant-check");
    var timer = null;
    var latest = 0;
    nameInput.addEventListener("input", function () {
      clearTimeout(timer);
      var value = nameInput.value.trim();
      if (!value) { output.textContent = ""; output.className = "check"; return; }
      timer = setTimeout(function () {
        var request = ++latest;
        fetch(nameInput.dataset.nameCheck + "?name=" + encodeURIComponent(value), { headers: { Accept: "application/json" } })
          .then(function (response) { return response.json(); })
          .then(function (result) {
            if (request !== latest) { return; }
            output.textContent = result.message || "";
            output.className = "check " + (result.available ? "ok" : "bad");
            nameInput.setAttribute("aria-invalid", result.available ? "false" : "true");
          })
          .catch(function () { output.textContent = ""; });
      }, 250);
    });
  }

  // Console: live preview of the branding form.
  var preview = document.getElementById("preview");
  if (preview) {
    var colour = /^#[0-9a-fA-F]{6}$/;
    document.querySelectorAll("[data-preview]").forEach(function (input) {
      input.addEventListener("input", function () {
        var kind = input.dataset.preview;
        if (kind === "name") {
          document.getElementById("preview-name").textContent = input.value || "Your product";
        } else if (colour.test(input.value)) {
          preview.style.setProperty(kind === "primary" ? "--primary" : "--accent", input.value);
          var picker = document.querySelector('[data-mirror="' + input.id + '"]');
          if (picker) { picker.value = input.value.toLowerCase(); }
        }
      });
    });
    document.querySelectorAll("[data-mirror]").forEach(function (picker) {
      picker.addEventListener("input", function () {
        var target = document.getElementById(picker.dataset.mirror);
        target.value = picker.value;
        target.dispatchEvent(new Event("input"));
      });
    });
  }
})();
