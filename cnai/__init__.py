"""cnai: git push -> retrain -> tune -> register, on Argo Workflows or on one machine."""

__version__ = "0.1.0"
