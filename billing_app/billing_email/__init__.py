"""The organisation's billing email: the address rules (`addresses`), one change at a time
(`locking`), an admin's save through Stripe (`saving`), Stripe's events (`events`), the audit
trail (`history`), the form (`forms`) and the routes (`views`)."""
