"""Argo semantics shared by the local engine, the linter and the events gateway."""
