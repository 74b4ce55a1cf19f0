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

  // Console: poll the tenant's status until provisioning settles and update it in place,
  // so a form the user is filling in is never reloaded away.
  var statusCard = document.querySelector("[data-status-url]");
  var settled = ["Ready", "Suspended", "Failed"];
  if (statusCard && settled.indexOf(statusCard.dataset.phase) < 0) {
    var poll = setInterval(function () {
      fetch(statusCard.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (tenant) {
          var status = tenant && tenant.status;
          if (!status || !status.phase) { return; }
          var phase = statusCard.querySelector("[data-testid=phase]");
          phase.textContent = status.phase;
          phase.className = "phase phase-" + status.phase.toLowerCase();
          if (status.url) {
            var link = document.createElement("a");
            link.href = status.url;
            link.textContent = status.url;
            var urlCell = statusCard.querySelector("[data-testid=url]");
            urlCell.replaceChildren(link);
            var open = document.querySelector("form[action$='/open'] button");
            if (open) { open.disabled = false; open.removeAttribute("aria-disabled"); }
          }
          if (settled.indexOf(status.phase) >= 0) { clearInterval(poll); }
        })
        .catch(function () { clearInterval(poll); });
    }, 5000);
  }
})();
