"""Interval grid, loss at grid points (interpolation, never extrapolation), transition rows."""

from __future__ import annotations

import numpy as np
import pytest

from regmixd_cli.errors import UsageError
from regmixd_cli.fit.transitions import (
    build_loss_table,
    build_transitions,
    even_grid,
    loss_at,
    name_some,
    parse_intervals,
    resolve_target,
)
from tests.helpers.fit_stores import make_store, smooth_store, smooth_world


def test_even_grid_ends_at_proxy_steps():
    assert even_grid(1000, 4) == (200.0, 400.0, 600.0, 800.0, 1000.0)
    assert even_grid(1000, 0) == (1000.0,)
    with pytest.raises(UsageError):
        even_grid(1000, -1)


def test_loss_at_interpolates_between_logged_steps():
    steps = np.array([100.0, 200.0, 400.0])
    values = np.array([6.0, 5.0, 4.0])
    got = loss_at(steps, values, [100, 150, 300, 400])
    assert got == pytest.approx([6.0, 5.5, 4.5, 4.0])


def test_loss_at_never_extrapolates():
    steps = np.array([100.0, 200.0])
    values = np.array([6.0, 5.0])
    got = loss_at(steps, values, [50, 150, 250])
    assert np.isnan(got[0]) and np.isnan(got[2])
    assert got[1] == pytest.approx(5.5)
    assert np.isnan(loss_at(np.array([]), np.array([]), [1.0])).all()


@pytest.mark.parametrize("text", ["100,50", "a,b", "0,100", "100,100", "nan,200"])
def test_parse_intervals_rejects_bad_grids(text):
    with pytest.raises(UsageError):
        parse_intervals(text)


def test_parse_intervals():
    assert parse_intervals("100, 250.5,1000") == (100.0, 250.5, 1000.0)


def test_target_defaults_to_the_only_validation_metric():
    store = smooth_store(metrics=("val/loss", "train/loss"))
    assert resolve_target(store, None) == "val/loss"
    assert resolve_target(store, "train/loss") == "train/loss"
    with pytest.raises(UsageError, match="no metric 'nope'"):
        resolve_target(store, "nope")


def test_ambiguous_target_lists_candidates():
    store = smooth_store(metrics=("val/a", "eval_b_loss", "train/loss"))
    with pytest.raises(UsageError, match="val/a") as info:
        resolve_target(store, None, "S")
    assert "eval_b_loss" in str(info.value) and "train/loss" not in str(info.value)
    assert str(info.value).startswith("S:")


def test_loss_table_leaves_out_diverged_and_short_runs():
    steps = tuple(range(50, 501, 50))
    store = smooth_store(n_runs=6, steps=steps, diverged=(1,), last_step={2: 400, 4: 450})
    table = build_loss_table(store, "val/loss", n_switch_points=4)
    assert table.grid == (100.0, 200.0, 300.0, 400.0, 500.0)
    assert table.runs == ("r000", "r003", "r005")
    assert table.diverged == ("r001",)
    assert table.short == ("r002", "r004")
    assert table.losses.shape == (3, 5)
    assert table.mixtures.shape == (3, 4)
    assert not table.endpoint_only


def test_loss_table_values_match_the_curves():
    steps = (60, 120, 180, 240, 300)
    domains, weights, curves = smooth_world(n_runs=3, steps=steps)
    table = build_loss_table(
        make_store(domains, weights, curves, steps), "val/loss", intervals=[90, 300]
    )
    expected_90 = (curves["val/loss"][:, 0] + curves["val/loss"][:, 1]) / 2
    assert table.losses[:, 0] == pytest.approx(expected_90)
    assert table.losses[:, 1] == pytest.approx(curves["val/loss"][:, -1])
    assert table.mixtures == pytest.approx(weights)


def test_proxy_steps_is_the_largest_step_reached():
    store = smooth_store(n_runs=4, last_step={0: 400})
    table = build_loss_table(store, "val/loss", n_switch_points=1)
    assert table.proxy_steps == 500.0
    assert table.short == ("r000",)


def test_one_observation_per_run_is_endpoint_only():
    steps = (1000,)
    domains, weights, curves = smooth_world(n_runs=5, steps=steps)
    table = build_loss_table(make_store(domains, weights, curves, steps), "val/loss")
    assert table.endpoint_only
    assert table.grid == (1000.0,)
    assert build_transitions(table).next_loss.size == 0


def test_transition_rows_pair_each_loss_with_the_next():
    store = smooth_store(n_runs=3)
    table = build_loss_table(store, "val/loss", n_switch_points=2)
    rows = build_transitions(table)
    assert rows.loss.shape == (6,)
    assert list(rows.stage) == [1, 2, 1, 2, 1, 2]
    assert list(rows.run_index) == [0, 0, 1, 1, 2, 2]
    assert rows.t.tolist() == [table.grid[0], table.grid[1]] * 3
    assert rows.loss[1] == table.losses[0, 1] and rows.next_loss[1] == table.losses[0, 2]
    assert (rows.mixtures[2] == table.mixtures[1]).all()


def test_name_some():
    assert name_some(["a", "b"]) == "a, b"
    assert name_some([str(i) for i in range(8)], limit=3) == "0, 1, 2 and 5 more"
