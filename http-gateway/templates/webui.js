// Puts fresh panels in place every two seconds; says so when it cannot.
(() => {
  const panels = document.getElementById("panels");
  const live = document.getElementById("live");
  const url = location.pathname.replace(/\/?$/, "/panels");
  const refresh = async () => {
    try {
      const res = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      panels.innerHTML = await res.text();
      live.textContent = "updating every 2 s";
      live.className = "ok";
    } catch (e) {
      live.textContent = `not updating: ${e.message}`;
      live.className = "err";
    }
    setTimeout(refresh, 2000);
  };
  live.textContent = "updating every 2 s";
  setTimeout(refresh, 2000);
})();
