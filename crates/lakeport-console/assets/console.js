// Lakeport console: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="element-id">.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
  });

  // Live batch status: the section carries the URL of its own fragment while it runs.
  var status = document.getElementById("batch-status");
  if (status && status.getAttribute("data-poll")) {
    var url = status.getAttribute("data-poll");
    var poll = function () {
      var xhr = new XMLHttpRequest();
      xhr.open("GET", url);
      xhr.onload = function () {
        if (xhr.status !== 200) { return; }
        var holder = document.createElement("div");
        holder.innerHTML = xhr.responseText;
        var fresh = holder.querySelector("#batch-status");
        if (!fresh) { return; }
        if (fresh.getAttribute("data-running") === "false") {
          // Finished: the full page now has files, rejected rows and actions.
          window.location.reload();
          return;
        }
        status.innerHTML = fresh.innerHTML;
        setTimeout(poll, 2000);
      };
      xhr.send();
    };
    setTimeout(poll, 1500);
  }

  // Upload: drag and drop onto the drop zone, and a progress bar while the form is sent.
  var form = document.getElementById("upload");
  if (form && window.FormData && window.DataTransfer) {
    var drop = document.getElementById("drop");
    var input = document.getElementById("files");
    var bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    drop.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    ["dragenter", "dragover"].forEach(function (name) {
      drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      drop.addEventListener(name, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        text.textContent = input.files.length + " file(s) ready.";
      }
    });
    form.addEventListener("submit", function (event) {
      if (!input.files.length) { return; }
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      bar.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          var percent = Math.round(e.loaded * 100 / e.total);
          bar.value = percent;
          text.textContent = "Uploading… " + percent + "%";
        }
      };
      xhr.upload.onload = function () { text.textContent = "Uploaded; completing the batch…"; };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL) {
          window.location.assign(xhr.responseURL);
          return;
        }
        // Show the server's error page in place.
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var main = page.querySelector("main");
        document.querySelector("main").innerHTML = main ? main.innerHTML : "<p class=alert>Upload failed (" + xhr.status + ").</p>";
      };
      xhr.onerror = function () {
        text.textContent = "The upload failed: the connection broke. Try again.";
        button.disabled = false;
      };
      xhr.send(new FormData(form));
    });
  }
})();
