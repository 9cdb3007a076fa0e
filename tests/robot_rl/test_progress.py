"""The training job's progress line: what it says, and how it shows on a terminal and in a file."""

from __future__ import annotations

import io
import math

from robot_rl.loop.progress import Progress, ProgressLine, format_progress


def _progress(**changes) -> Progress:
    fields = dict(
        elapsed_s=3725.0,
        env_steps=12345,
        updates_per_s=41.26,
        success_rate=0.65,
        eval_success_rate=0.4,
        intervention_rate=0.123,
    )
    return Progress(**(fields | changes))


def test_progress_line_says_time_steps_rate_success_and_interventions():
    assert format_progress(_progress()) == (
        "1:02:05  steps 12,345  41.3 upd/s  success 0.65  eval 0.40  interventions 12%"
    )
    early = format_progress(
        _progress(elapsed_s=65.0, env_steps=0, success_rate=math.nan, eval_success_rate=math.nan)
    )
    assert early == "1:05  steps 0  41.3 upd/s  success -  eval -  interventions 12%"
    long_run = _progress(elapsed_s=10 * 3600 - 1, env_steps=999_999, intervention_rate=1.0)
    assert len(format_progress(long_run)) < 80  # a wider line wraps, and \r rewrites only its end


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_in_place_and_ended_once(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    screen = _Terminal()
    line = ProgressLine(screen)
    line.show("env steps 100 and more")
    line.show("env steps 200")
    line.close("env steps 300")
    # a shorter line blanks what the longer one left; only close ends the line
    assert screen.getvalue() == (
        "\renv steps 100 and more" + "\renv steps 200" + " " * 9 + "\renv steps 300\n"
    )
    # wider than the terminal, it would wrap and \r would rewrite only its last part
    monkeypatch.setenv("COLUMNS", "12")
    screen = _Terminal()
    ProgressLine(screen).show("env steps 100 and more")
    assert screen.getvalue() == "\renv steps 1"


def test_into_a_file_a_line_at_most_every_interval_and_always_the_last():
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine(out, every_s=30.0, clock=lambda: now[0])
    for t in (0.0, 2.0, 28.0, 31.0, 33.0):
        now[0] = t
        line.show(f"at {t:.0f} s")
    assert out.getvalue() == "at 0 s\nat 31 s\n"
    line.close()  # the newest state held back is written at the end
    assert out.getvalue() == "at 0 s\nat 31 s\nat 33 s\n"
    line.close("final")
    assert out.getvalue().endswith("at 33 s\nfinal\n") and "\r" not in out.getvalue()
