"""``python -m cnai`` is the ``cnai`` command."""

import sys

from cnai.cli.main import main

sys.exit(main())
