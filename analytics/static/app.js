/* Dashboard niceties (the pages work without them): submit the filter bar when the site
   changes, and mark the range custom when a date is edited. Loaded as a file: the pages' CSP
   forbids inline scripts. */
(function () {
  "use strict";
  function ready() {
    var form = document.getElementById("filterbar");
    if (!form) return;
    var period = form.querySelector('input[name="period"]');
    Array.prototype.forEach.call(form.querySelectorAll("[data-autosubmit]"), function (el) {
      el.addEventListener("change", function () { form.submit(); });
    });
    Array.prototype.forEach.call(form.querySelectorAll("[data-custom-date]"), function (el) {
      el.addEventListener("change", function () { if (period) period.value = "custom"; });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
