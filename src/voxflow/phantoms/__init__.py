"""Phantom generators: each writes a cohort in its real dataset's on-disk layout."""
