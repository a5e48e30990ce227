"""The benchmarks' own judgements of a run, on figures given here (no benchmark is run)."""

from __future__ import annotations

from bench.peers.compare import status_swing_note
from bench.tus import disk_swing_note


def test_a_disk_that_kept_its_speed_gets_no_warning() -> None:
    assert disk_swing_note({("disk", 1): [0.49, 0.37, 0.45]}) is None


def test_a_disk_that_slowed_down_during_the_run_is_named() -> None:
    # The rounds of a run whose disk ran out of its write budget (bench/README, ninth session).
    note = disk_swing_note({("disk", 1): [68.75, 22.19, 37.41]})
    assert note is not None
    assert "22.19–68.75 s per round" in note


def test_one_round_or_none_says_nothing() -> None:
    assert disk_swing_note({("disk", 1): [3.0]}) is None
    assert disk_swing_note({("chute", 1): [1.0, 9.0]}) is None


def test_a_status_get_that_held_its_rate_gets_no_warning() -> None:
    assert status_swing_note("peer", [2423.5, 3098.8, 2640.6]) is None


def test_a_status_get_that_fell_to_a_third_in_some_rounds_is_named() -> None:
    # The peer's rounds of the 05:20 run of bench/README's tenth session: its median made
    # chute's ratio 1.56, a target "met" by no merit of chute's.
    note = status_swing_note("peer", [1084.7, 1070.5, 3095.5])
    assert note is not None
    assert note.startswith("peer status GET: 1,070–3,096 req/s across rounds")


def test_a_single_status_round_says_nothing() -> None:
    assert status_swing_note("chute", [1705.1]) is None
