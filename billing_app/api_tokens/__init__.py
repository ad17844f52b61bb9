"""API tokens: created, listed and revoked by admins in Settings → Usage."""
