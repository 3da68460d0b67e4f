"""Evaluation: metrics and figures shared by all studies."""
