// Runs before the first paint: apply the last theme so a dark page does not flash white.
(function () {
  try {
    var theme = localStorage.getItem("chatwithme.theme");
    if (theme === "light" || theme === "dark" || theme === "system") {
      document.documentElement.dataset.theme = theme;
    }
  } catch (e) {
    /* storage disabled: the system theme it is */
  }
})();
