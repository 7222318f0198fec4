() => {
  // Three things Gradio does not do on its own, for every tab at once:
  // 1. An output that failed shows only a red "Error" once the toast with the words has faded;
  //    the words are copied under that badge and stay until the next run replaces the badge.
  // 2. Stop buttons are live only while something runs in their tab.
  // 3. A slider's box silently puts a typed number back in range (99999 becomes 2048); it says so.
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

  function noteOutOfRange(event) {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "number" || box.value === "") return;
    const block = box.closest(".block");
    if (!block || !block.querySelector("input[type=range]")) return; // only sliders put values back
    const typed = Number(box.value);
    const low = box.min === "" ? -Infinity : Number(box.min), high = box.max === "" ? Infinity : Number(box.max);
    if (!(typed > high || typed < low)) return;
    block.querySelector(".studio-range-note")?.remove();
    const label = block.querySelector("[data-testid='block-info']")?.textContent.trim() || "This value";
    const used = typed > high ? high : low;
    const note = document.createElement("div");
    note.className = "studio-range-note";
    note.setAttribute("role", "status");
    note.textContent = `${label}: ${box.value} is ${typed > high ? "more than the largest" : "less than the smallest"} ` +
      `value allowed here, so ${used} is used.`;
    block.append(note);
  }
  // Capture: read what was typed before the slider's own handlers put it back in range.
  document.addEventListener("blur", noteOutOfRange, true);
  document.addEventListener("change", noteOutOfRange, true);
  // The note stands until the slider is moved or typed in again.
  document.addEventListener("input", (event) => {
    event.target.closest?.(".block")?.querySelector(".studio-range-note")?.remove();
  }, true);

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
