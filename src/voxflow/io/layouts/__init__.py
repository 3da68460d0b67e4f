"""Readers of real datasets' on-disk layouts (the phantoms write the same layouts)."""
