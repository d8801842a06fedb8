// Reload the preview when a template or a source changes: poll a cheap fingerprint.
(function () {
  var me = document.currentScript;
  var version = me && me.getAttribute("data-version");
  if (!version) { return; }
  setInterval(function () {
    fetch("/preview/version", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : version; })
      .then(function (v) { if (v.trim() !== version) { location.reload(); } })
      .catch(function () {});
  }, 1000);
})();
