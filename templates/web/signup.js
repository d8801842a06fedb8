// Fill the time zone from the browser, once, if the reader has not typed one.
(function () {
  var field = document.getElementById("timezone");
  if (field && !field.value && window.Intl) {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  }
})();
