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
