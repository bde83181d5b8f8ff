// The live page's script (served as /live.js: the page's Content-Security-Policy allows no inline script).
// Reload the live part every two seconds; without JavaScript the page refreshes itself.
setInterval(async () => {
  try {
    const response = await fetch("/live", { cache: "no-store" });
    if (!response.ok) return;
    const live = document.getElementById("live");
    live.innerHTML = await response.text();
    live.dataset.refreshes = Number(live.dataset.refreshes || 0) + 1;
  } catch (_) {
    // The node is restarting or unreachable: keep the last numbers and try again.
  }
}, 2000);
