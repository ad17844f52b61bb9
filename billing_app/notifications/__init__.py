"""Billing contacts, the monthly statement and budget and growth alerts, by mail.

Split by job: `contacts` (add, confirm, resend, remove, unsubscribe), `settings` (the alert
settings), `alerts` (the checks), `statements` (the `invoice.finalized` statement), `mail`
(building messages with the standard library's `email`), `outbox` (the table of messages and
its drain), `smtp` (sending to `SMTP_URL`), `tasks` (the worker's tasks and schedule),
`adapters` (the one place that calls into other features' internals), and `views`.
"""
