() => {
  // Two things Gradio does not do on its own, for every tab at once:
  // 1. An output that failed shows only a red "Error" once the toast with the words has faded;
  //    the words are copied under that badge and stay until the next run replaces the badge.
  // 2. Stop buttons are live only while something runs in their tab.
  const TRACKER = '[data-testid="status-tracker"]';
  const RECENT_MS = 3000; // an error badge and its toast arrive together, in either order
  let lastError = { text: "", at: 0 };
  const seenToasts = new WeakSet();

  function latestToastError() {
    for (const item of document.querySelectorAll(".toast-body.error [data-testid='toast-text']")) {
      if (!seenToasts.has(item)) {
        seenToasts.add(item);
        lastError = { text: item.textContent.trim(), at: Date.now() };
        // A badge that came just before its toast may carry an older message: give it this one.
        for (const words of document.querySelectorAll(".studio-error-text")) {
          if (lastError.at - Number(words.dataset.at) < RECENT_MS) words.textContent = lastError.text;
        }
      }
    }
  }

  function labelErrors() {
    if (!lastError.text || Date.now() - lastError.at > RECENT_MS) return;
    for (const badge of document.querySelectorAll(`${TRACKER} span.error`)) {
      const next = badge.nextElementSibling;
      if (next && next.classList.contains("studio-error-text")) continue;
      const words = document.createElement("p");
      words.className = "studio-error-text";
      words.setAttribute("role", "alert");
      words.textContent = lastError.text;
      words.dataset.at = String(Date.now());
      badge.after(words); // inside the badge's own block, so Gradio removes it with the badge
    }
  }

  function running(scope) {
    for (const tracker of scope.querySelectorAll(TRACKER)) {
      if (!tracker.classList.contains("hide") && !tracker.querySelector("span.error")) return true;
    }
    return false;
  }

  function updateStops() {
    for (const button of document.querySelectorAll("button.studio-stop")) {
      const scope = button.closest(".tabitem") || document.body;
      const idle = !running(scope);
      if (button.disabled !== idle) button.disabled = idle;
      button.classList.toggle("studio-idle", idle);
    }
  }

  let scheduled = false;
  function update() {
    scheduled = false;
    latestToastError();
    labelErrors();
    updateStops();
  }
  new MutationObserver(() => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(update);
    }
  }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["class"] });
  update();
}
