"""Difference-in-differences estimators (see ARCHITECTURE.md)."""
