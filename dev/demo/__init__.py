"""The demo organisation of `make run` and its commands."""
