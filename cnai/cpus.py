"""How many CPUs this process may run on (its affinity mask, not the machine's count).

Python 3.13 has ``os.process_cpu_count()``; on 3.11 the mask is read where the
platform has one, else the machine's count is used.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
