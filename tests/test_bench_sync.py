"""The sync benchmark's own pure helpers (the benchmark itself runs with ``python -m bench sync``)."""

from __future__ import annotations

import math
import os

import pytest

from bench.sync import chunked, cpu_seconds, parse_proc_status, rename_gaps, round_robin, summary_ms


def test_rename_gaps_makes_each_level_with_the_fewest_changes() -> None:
    # Token at the head, 9,900 renames, token, 100 renames, token: 10,000, 100 and 0 pending.
    assert rename_gaps([0, 100, 10_000]) == [(10_000, 9_900), (100, 100), (0, 0)]
    assert rename_gaps([100, 0, 100]) == [(100, 100), (0, 0)]
    assert rename_gaps([5]) == [(5, 5)]
    with pytest.raises(ValueError):
        rename_gaps([-1, 0])


def test_round_robin_wraps_and_any_window_of_size_is_distinct() -> None:
    picks = round_robin(25, 7, 10)
    assert picks[:4] == [7, 8, 9, 0]
    assert all(len(set(picks[i : i + 10])) == 10 for i in range(len(picks) - 9))
    with pytest.raises(ValueError):
        round_robin(1, 0, 0)


def test_chunked() -> None:
    assert chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert chunked([], 3) == []


def test_parse_proc_status_reads_sizes_and_counts() -> None:
    text = "Name:\tpython\nState:\tS (sleeping)\nVmRSS:\t  102400 kB\nRssAnon:\t   51200 kB\nThreads:\t4\n"
    assert parse_proc_status(text) == {"VmRSS": 102400, "RssAnon": 51200, "Threads": 4}


def test_cpu_seconds_survives_a_command_name_with_spaces_and_parentheses() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    assert cpu_seconds("123 (odd (name) here) " + " ".join(fields)) == pytest.approx(4.0)


def test_summary_ms() -> None:
    summary = summary_ms([0.001 * n for n in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(50)
    assert summary["p99_ms"] == pytest.approx(99)
    assert summary["max_ms"] == pytest.approx(100)
    assert all(math.isnan(v) for v in summary_ms([]).values())
