"""The one error a calibration step raises when its input cannot give a trustworthy result."""

from __future__ import annotations


class CalibrationError(RuntimeError):
    """Calibration refused.

    The message says what was usable, what was rejected and why, and what to do next.
    """
