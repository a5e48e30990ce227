from __future__ import annotations

from actors.progress import ProgressThrottle


def test_progress_is_written_every_step_and_never_at_the_end() -> None:
    throttle = ProgressThrottle(step=0.25, interval=3600)
    due = [f for f in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 1.0) if throttle.due(f)]
    assert due == [0.3, 0.6, 0.9]


def test_slow_stages_report_after_the_interval() -> None:
    throttle = ProgressThrottle(step=0.5, interval=0.0)
    assert throttle.due(0.01) and throttle.due(0.02)
