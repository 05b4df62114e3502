"""The local engine: executes a compiled Argo Workflows (v4) spec on one machine.

It reads the same YAML ``cnai compile`` writes for the cluster, refuses any field it
does not honour before running anything (see :mod:`cnai.engine.spec`), and records
each run under ``<home>/runs/<run-id>/``. docs/parity.md lists every Argo feature
the pipeline uses and how it is honoured here.
"""
