"""The read-only usage API under /api/v1, for the tools MSPs rebill with."""
