"""Peak resident memory of this process, per stage.

Linux keeps the peak (VmHWM) per process and lets a process reset it by writing "5" to
/proc/self/clear_refs, so a runner can report each stage's own peak instead of the largest so far.
Elsewhere the peak falls back to ru_maxrss, which cannot be reset (and is inherited across exec).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def peak_rss() -> float:
    """Peak resident memory of this process in bytes since start or the last `reset_peak`.

    >>> peak_rss() > 0
    True
    """
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def reset_peak() -> bool:
    """Restart the peak at the current resident size; False where the system cannot."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False
