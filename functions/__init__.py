"""Thin entry points per cloud: each parses its platform's envelope, calls ``core`` and renders the result."""
