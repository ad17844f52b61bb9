"""The tenant page: one tenant's month."""
