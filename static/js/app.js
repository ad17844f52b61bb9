/* Petra Billing */

/* Escape in a form marked data-escape-cancels submits the named cancel form (htmx or not). */
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || !(event.target instanceof Element)) {
    return;
  }
  const form = event.target.closest("form[data-escape-cancels]");
  const cancel = form && document.getElementById(form.dataset.escapeCancels);
  if (!cancel) {
    return;
  }
  event.preventDefault();
  cancel.requestSubmit();
});

/* A field marked data-select-on-open is focused with its text selected once htmx has settled
   it into the page, so the admin can type the new value straight away. */
document.addEventListener("htmx:afterSettle", () => {
  const field = document.querySelector("input[data-select-on-open]");
  if (field && !field.dataset.opened) {
    field.dataset.opened = "true";
    field.focus();
    field.select();
  }
});

/* A report that htmx found ready is fetched as a plain download (htmx cannot save files). */
document.addEventListener("htmx:afterSettle", () => {
  const link = document.querySelector("a[data-start-download]");
  if (link) {
    link.removeAttribute("data-start-download");
    window.location.assign(link.href);
  }
});

/* With htmx driving them, month pickers change the month as soon as one is chosen: their
   "Show" button is for browsers without JavaScript only. */
if (window.htmx) {
  document.documentElement.classList.add("htmx-driven");
}

/* Busy regions. A region marked data-busy-region carries aria-busy="true" while a request that
   will replace it is in flight, and its controls marked data-busy-disables are held meanwhile
   (aria-disabled, out of the tab order, clicks ignored), so nothing can fetch what is leaving
   the screen. A request replaced by a newer one (hx-sync) keeps the region busy. */
const requestsInFlight = new WeakMap();

function busyRegionOf(event) {
  const target = event.detail && event.detail.target;
  return target instanceof Element && target.matches("[data-busy-region]") ? target : null;
}

function hold(control, held) {
  if (held) {
    control.setAttribute("aria-disabled", "true");
    control.setAttribute("tabindex", "-1");
  } else {
    control.removeAttribute("aria-disabled");
    control.removeAttribute("tabindex");
  }
}

function setBusy(region, busy) {
  if (busy) {
    region.setAttribute("aria-busy", "true");
  } else {
    region.removeAttribute("aria-busy");
  }
  region.querySelectorAll("[data-busy-disables]").forEach((control) => hold(control, busy));
}

document.addEventListener(
  "click",
  (event) => {
    const held = event.target instanceof Element && event.target.closest('[aria-disabled="true"]');
    if (held) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true,
);

document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.target instanceof Element && event.target.closest('[aria-disabled="true"]')) {
    event.preventDefault();
    return;
  }
  const region = busyRegionOf(event);
  if (region) {
    requestsInFlight.set(region, (requestsInFlight.get(region) || 0) + 1);
    setBusy(region, true);
  }
});

document.addEventListener("htmx:afterRequest", (event) => {
  const region = busyRegionOf(event);
  if (region) {
    const left = Math.max(0, (requestsInFlight.get(region) || 1) - 1);
    requestsInFlight.set(region, left);
    if (left === 0) {
      setBusy(region, false);
    }
  }
});

/* A month picker whose month could not be fetched (no connection, no answer) goes back to the
   month on screen and says so; once a month has arrived it is the one on screen. */
function monthPickerOf(event) {
  const picker = event.target;
  return picker instanceof HTMLSelectElement && picker.closest(".month-picker") ? picker : null;
}

function monthProblem(picker, text) {
  const problem = picker.form.querySelector("[data-month-problem]");
  problem.textContent = text;
  problem.hidden = !text;
}

document.addEventListener("htmx:afterRequest", (event) => {
  const picker = monthPickerOf(event);
  if (picker && event.detail.successful) {
    for (const option of picker.options) {
      option.defaultSelected = option.selected;
    }
    monthProblem(picker, "");
  }
});

for (const failure of ["htmx:sendError", "htmx:timeout"]) {
  document.addEventListener(failure, (event) => {
    const picker = monthPickerOf(event);
    if (!picker) {
      return;
    }
    const chosen = picker.options[picker.selectedIndex];
    const shown = Array.from(picker.options).find((option) => option.defaultSelected);
    monthProblem(picker, `${chosen.text} could not be loaded: check the connection and choose it again.`);
    if (shown) {
      picker.value = shown.value;
    }
  });
}

/* A download link marked data-watch-download shows that its file is being prepared until the
   file begins to arrive: the link asks with a fresh download_token, and the server answers the
   file with a cookie of that name. */
const DOWNLOAD_PATIENCE_MS = 180000;

function randomToken() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function cookieName(token) {
  return `petra_download_${token}`;
}

function downloadAnswer(token) {
  const prefix = `${cookieName(token)}=`;
  const pair = document.cookie.split("; ").find((each) => each.startsWith(prefix));
  return pair ? pair.slice(prefix.length) : null;
}

function finishDownload(link, href, status, answer) {
  link.classList.remove("is-preparing");
  hold(link, false);
  link.href = href;
  if (status) {
    const name = link.dataset.downloadName || "the file";
    status.textContent =
      answer === null || answer === "200"
        ? ""
        : `Could not prepare ${name} (error ${answer}). Try again, or choose another month.`;
  }
}

document.addEventListener("click", (event) => {
  const link = event.target instanceof Element && event.target.closest("a[data-watch-download]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey) {
    return;
  }
  const href = link.getAttribute("href");
  const token = randomToken();
  const url = new URL(href, window.location.href);
  url.searchParams.set("download_token", token);
  link.href = url.toString();
  link.classList.add("is-preparing");
  hold(link, true);
  const status = document.getElementById(link.dataset.watchDownload);
  if (status) {
    status.textContent = `Preparing ${link.dataset.downloadName || "the file"}…`;
  }
  const started = Date.now();
  const timer = window.setInterval(() => {
    const answer = downloadAnswer(token);
    if (answer !== null || Date.now() - started > DOWNLOAD_PATIENCE_MS || !link.isConnected) {
      window.clearInterval(timer);
      document.cookie = `${cookieName(token)}=; Max-Age=0; Path=/; SameSite=Lax`;
      finishDownload(link, href, status, answer);
    }
  }, 250);
});

/* A form marked data-clears-errors drops its old error as soon as it is sent again. */
document.addEventListener("htmx:beforeRequest", (event) => {
  const form = event.target instanceof Element && event.target.closest("form[data-clears-errors]");
  if (!form) {
    return;
  }
  form.querySelectorAll("[data-form-error]").forEach((error) => {
    form.querySelectorAll(`[aria-describedby~="${error.id}"]`).forEach((field) => {
      const rest = field.getAttribute("aria-describedby").split(/\s+/).filter((id) => id !== error.id);
      field.setAttribute("aria-describedby", rest.join(" "));
    });
    error.remove();
  });
  form.querySelectorAll('[aria-invalid="true"]').forEach((field) => field.removeAttribute("aria-invalid"));
});

/* Copy buttons. A button marked data-copy-from="ID" copies the text of that element; it is
   hidden until this script shows it, so that without JavaScript (or without a clipboard) the
   text is simply there to select. Its status element says whether the copy worked. */
function showCopyButtons() {
  if (!navigator.clipboard) return;
  document.querySelectorAll("button[data-copy-from][hidden]").forEach((button) => {
    button.hidden = false;
  });
}
document.addEventListener("DOMContentLoaded", showCopyButtons);
document.addEventListener("htmx:afterSettle", showCopyButtons);
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy-from]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyFrom);
  const status = button.parentElement.querySelector("[data-copy-status]");
  if (!source) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(
    () => {
      if (status) status.textContent = "Copied.";
    },
    () => {
      if (status) status.textContent = "Could not copy: select the token and copy it yourself.";
    },
  );
});
/* A page opened at a heading marked data-focus-on-arrival (a chart bar links to its month's
   heading) puts keyboard focus there too, not on the page's body. */
function focusArrival() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (target && target.hasAttribute("data-focus-on-arrival")) {
    target.focus();
  }
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", focusArrival);
} else {
  focusArrival();
}
