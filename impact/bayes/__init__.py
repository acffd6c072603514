"""Bayesian hierarchical models of tool effects (PyMC, ArviZ)."""
