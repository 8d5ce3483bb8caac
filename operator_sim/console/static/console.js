/*
 * operator-sim console: keeps the simulation clock and the deadline countdowns moving
 * between the server's updates. The server sends the clock's state when it changes (mode,
 * scale, and simulation time at that moment); the page extrapolates from when it arrived.
 * It also keeps a phone's screen scrolled to its newest message.
 */
(function () {
  "use strict";

  var anchor = null;
  var timer = null;

  function format(ms) {
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function remaining(ms) {
    var seconds = Math.floor(Math.abs(ms) / 1000);
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var parts = hours ? [hours + " h"] : [];
    if (hours || minutes) {
      parts.push(minutes + " min");
    }
    parts.push((seconds % 60) + " s");
    var text = parts.join(" ");
    return ms > 0 ? text + " left" : "passed " + text + " ago";
  }

  function now() {
    return anchor.simMs + (performance.now() - anchor.at) * anchor.scale;
  }

  function tick() {
    if (anchor === null) {
      return;
    }
    var current = now();
    if (anchor.scale > 0) {
      anchor.el.textContent = format(current);
      anchor.el.setAttribute("datetime", new Date(current).toISOString());
    }
    document.querySelectorAll("[data-due-ms]").forEach(function (el) {
      el.textContent = "(" + remaining(Number(el.getAttribute("data-due-ms")) - current) + ")";
    });
  }

  // Anchors on the clock element the server rendered last; a new element is a new state.
  function read() {
    var el = document.querySelector('[data-testid="clock-now"]');
    if (el === null) {
      anchor = null;
      return;
    }
    if (anchor !== null && anchor.el === el) {
      return;
    }
    var mode = el.getAttribute("data-mode");
    var scale = mode === "manual" ? 0 : Number(el.getAttribute("data-scale")) || 0;
    anchor = { el: el, simMs: Number(el.getAttribute("data-sim-ms")), at: performance.now(), scale: scale };
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
    if (scale > 0) {
      timer = setInterval(tick, scale >= 4 ? 250 : 1000);
    }
  }

  // A phone's screen shows its newest message (at the bottom), unless its reader scrolled up.
  function stickToBottom() {
    document.querySelectorAll(".phone-screen").forEach(function (el) {
      if (!el.hasAttribute("data-scrolled-up")) {
        el.scrollTop = el.scrollHeight;
      }
    });
  }

  function scrolled(event) {
    var el = event.target;
    if (el instanceof Element && el.classList.contains("phone-screen")) {
      if (el.scrollHeight - el.scrollTop - el.clientHeight > 8) {
        el.setAttribute("data-scrolled-up", "");
      } else {
        el.removeAttribute("data-scrolled-up");
      }
    }
  }

  function refresh() {
    read();
    tick();
    stickToBottom();
  }

  // Says in words whether the page is receiving updates.
  function live(state, text) {
    var el = document.getElementById("live-status");
    if (el !== null) {
      el.setAttribute("data-live", state);
      el.textContent = text;
    }
  }

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("scroll", scrolled, true);
  document.addEventListener("htmx:afterSettle", refresh);
  document.addEventListener("htmx:sseOpen", function () {
    live("open", "live");
  });
  document.addEventListener("htmx:sseError", function () {
    live("reconnecting", "reconnecting…");
  });
})();
