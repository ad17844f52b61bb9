"""The organisation's Stripe invoices on the Usage page, read live from Stripe."""
