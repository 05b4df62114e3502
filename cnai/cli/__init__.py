"""The ``cnai`` command line."""
