"""``python -m cnai`` is the ``cnai`` command."""

from cnai.cli.main import run

run()
