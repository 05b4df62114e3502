"""Argo's own languages and rules, implemented once for the engine, the linter and events."""
