"""Per-stage peak memory: the peak follows a large allocation and restarts after a reset."""

import sys

import numpy as np
import pytest

from groverlm.peak import peak_rss, reset_peak


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_peak_sees_an_allocation_and_restarts_after_a_reset():
    assert reset_peak()
    before = peak_rss()
    block = np.ones(300_000_000 // 8)  # 300 MB, touched
    grown = peak_rss()
    del block
    assert grown - before > 250e6
    assert reset_peak()
    assert peak_rss() < grown - 250e6
