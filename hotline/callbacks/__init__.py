"""Automated satisfaction callbacks (rules B-1 … B-3; issue 14)."""
