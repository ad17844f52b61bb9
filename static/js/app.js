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

/* A region marked data-busy-region carries aria-busy="true" while a request issued from
   inside it is in flight (htmx marks it with its indicator class meanwhile). */
document.addEventListener("htmx:beforeRequest", (event) => {
  const region = event.target instanceof Element && event.target.closest("[data-busy-region]");
  if (region) {
    region.setAttribute("aria-busy", "true");
  }
});
document.addEventListener("htmx:afterRequest", (event) => {
  const region = event.target instanceof Element && event.target.closest("[data-busy-region]");
  if (region && !region.classList.contains("htmx-request")) {
    region.removeAttribute("aria-busy");
  }
});
