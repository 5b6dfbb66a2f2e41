"""Latency-aware pruning: greedy on importance per millisecond, the cached latency table, the
measure-and-adjust loop. Timings are injected so the selection is deterministic."""

from __future__ import annotations

import json
import math
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from slimforge.prune import PruningError, build_dependency_graph, prune
from slimforge.prune.latency import (LatencySettings, cache_path, choose_by_latency, find_layers, load_or_measure_tables,
                                     measure_tables, next_goal, read_tables, select_by_latency, select_uniform, width_grid,
                                     latency_step)

# Per-layer cost in ms of the two-conv model below, at (cin, cout): the first conv's channels are
# expensive (1 ms each), the second's cheap; the classifier costs nothing.
COSTS = {"0": lambda ci, co: 1.0 * co, "2": lambda ci, co: 0.001 * ci * co, "6": lambda ci, co: 0.0}


def fake_timer(spec, points, settings):
    return [COSTS[spec.name](ci, co) for ci, co in points]


def two_convs() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()


def setup(model, round_to=4):
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    layers = find_layers(model, graph, x, grid=5, round_to=round_to)
    tables = measure_tables(layers, LatencySettings(), fake_timer)
    groups = {g.module: i for i, g in enumerate(graph.groups)}
    return graph, layers, tables, groups


def test_the_layers_and_their_grids_follow_round_to():
    model = two_convs()
    _, layers, _, _ = setup(model)
    by_name = {s.name: s for s in layers}
    assert by_name["0"].cin_grid == (3,) and by_name["0"].cout_grid == (4, 8, 12, 16)  # the image channels are pinned
    assert by_name["6"].cout_grid == (4,) and by_name["6"].cin_grid == (4, 8, 12, 16)  # so are the classes
    assert width_grid(512, 8, 5) == (8, 136, 264, 384, 512) and width_grid(6, 8, 5) == (6,)


@pytest.mark.parametrize("cheap_in", ["0", "2"])
def test_greedy_removes_the_units_with_the_least_importance_per_millisecond(cheap_in):
    """Equal importances: the first conv's channels save 1 ms each, the second's 0.016, so the first
    conv goes first. Make the second conv's four weakest units near-worthless and they go first
    instead (importance per ms lower), exactly those four."""
    model = two_convs()
    graph, layers, tables, groups = setup(model)
    scores = [np.ones(len(g.units)) for g in graph.groups]
    weak = [3, 7, 11, 15]
    if cheap_in == "2":
        scores[groups["2"]] = np.full(16, 100.0)
        scores[groups["2"]][weak] = 0.001
    pruned, predicted = select_by_latency(graph, scores, layers, tables, target=0.999, round_to=4)
    chosen = graph.groups[groups[cheap_in]]
    assert pruned == {chosen.units[i].root for i in (weak if cheap_in == "2" else range(4))}
    full = 16 + 0.001 * 16 * 16  # conv 0 at 16 out, conv 2 at 16 x 16
    assert predicted == pytest.approx({"0": 12 + 0.001 * 12 * 16, "2": 16 + 0.001 * 16 * 12}[cheap_in] / full)


def test_greedy_reaches_the_predicted_target_in_round_to_steps():
    model = two_convs()
    graph, layers, tables, _ = setup(model)
    scores = [np.arange(1, len(g.units) + 1, dtype=float) for g in graph.groups]
    pruned, predicted = select_by_latency(graph, scores, layers, tables, target=0.5, round_to=4)
    assert predicted <= 0.5
    for g in graph.groups:
        kept = sum(u.root not in pruned for u in g.units)
        assert kept % 4 == 0 and kept >= 4


def test_the_measure_and_adjust_loop_corrects_a_biased_table(tmp_path):
    """The injected 'measurement' says the model is slower than the table predicts (measured =
    sqrt of the kept MAC fraction); the loop must aim lower until it is within 10%."""
    from slimforge.measure import count_macs

    model = two_convs()
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    scores = [np.arange(1, len(g.units) + 1, dtype=float) for g in graph.groups]

    def model_timer(original, candidate, batch, settings, channels_last):
        return 10.0, 10.0 * (count_macs(candidate, batch[:1]) / count_macs(original, batch[:1])) ** 0.5

    # the greedy's one-step offers let the loop land anywhere; the uniform share moves both convs at once (16 -> 12 -> 8)
    settings = LatencySettings(batch_size=2, channels_last=False, max_rounds=4, cache_dir=str(tmp_path), allocation="importance")
    pruned, result = choose_by_latency(model, graph, scores, 0.5, 4, x, settings, timer=fake_timer, model_timer=model_timer)
    assert Path(result.cache).is_file()
    assert abs(result.measured - 0.5) <= 0.05 and result.rounds >= 2
    assert result.predicted < result.measured  # the table alone would have stopped too early


def test_next_goal_reads_the_aim_off_a_line_of_measured_against_predicted():
    assert next_goal([(0.5, 0.7), (0.3, 0.4)], 0.5) == pytest.approx(0.3 + 0.2 * (0.1 / 0.3))  # tries on both sides
    # One try, predicted 0.3 measured 0.44: a fifth of the latency does not shrink (0.2 + 0.8 * p),
    # so 0.3 measured needs 0.125 predicted; scaling by target / measured would have aimed at 0.2.
    assert next_goal([(0.3, 0.44)], 0.3) == pytest.approx(0.125)


def test_the_cache_is_written_read_back_and_rebuilt_when_corrupt(tmp_path, caplog):
    model = two_convs()
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    layers = find_layers(model, graph, x, grid=5, round_to=4)
    settings = LatencySettings(batch_size=2, cache_dir=str(tmp_path))
    calls = []

    def counting_timer(spec, points, s):
        calls.append(spec.name)
        return fake_timer(spec, points, s)

    first = load_or_measure_tables(layers, settings, False, counting_timer)
    path = cache_path(layers, settings, False)
    assert path.is_file() and len(calls) == 3
    data = json.loads(path.read_text())
    assert data["batch_size"] == 2 and data["layers"]["0"]["ms"] == [[4.0, 8.0, 12.0, 16.0]]
    assert load_or_measure_tables(layers, settings, False, counting_timer) == first and len(calls) == 3  # read, not re-timed

    data["layers"]["2"]["ms"][0][0] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(PruningError, match=r"layer '2' has a malformed grid or negative"):
        read_tables(path, layers, settings, False)
    path.write_text("{not json")
    with pytest.raises(PruningError, match=str(path.name)):
        read_tables(path, layers, settings, False)
    with caplog.at_level(logging.WARNING):
        assert load_or_measure_tables(layers, settings, False, counting_timer) == first
    assert len(calls) == 6 and "measuring the latency table again" in caplog.text
    assert read_tables(path, layers, settings, False) == first  # the rebuilt file is valid


def test_a_cache_for_another_batch_size_or_model_is_another_file(tmp_path):
    model = two_convs()
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    layers = find_layers(model, graph, x, grid=5, round_to=4)
    a = cache_path(layers, LatencySettings(batch_size=2, cache_dir=str(tmp_path)), False)
    assert a != cache_path(layers, LatencySettings(batch_size=4, cache_dir=str(tmp_path)), False)
    wider = find_layers(model, graph, torch.randn(2, 3, 16, 16), grid=5, round_to=4)
    assert a != cache_path(wider, LatencySettings(batch_size=2, cache_dir=str(tmp_path)), False)


def test_prune_with_target_latency_records_what_it_measured(tmp_path):
    """End to end with real timings on a tiny CNN: the plan says what was aimed at and measured."""
    import slimforge
    from slimforge.artifacts import get_spec

    model = slimforge.create_model("cnn", num_classes=10, in_channels=1, width=32)
    x = torch.randn(2, 1, 16, 16)
    prune(model, x, target_latency=0.5, latency=LatencySettings(batch_size=8, cache_dir=str(tmp_path), repeats=3, max_rounds=2))
    plan = get_spec(model).edits[-1]
    lat = plan["latency"]
    assert lat["target"] == 0.5 and 0 < lat["measured"] < 1 and lat["batch_size"] == 8 and lat["rounds"] in (1, 2)
    assert model(x).shape == (2, 10)
    slimforge.save(model, tmp_path / "run")
    assert slimforge.load(tmp_path / "run")(x).shape == (2, 10)


def test_target_latency_is_one_of_the_targets():
    from slimforge.prune import PruneConfigError

    with pytest.raises(PruneConfigError, match="exactly one of ratio, target_params, target_macs, target_latency"):
        prune(two_convs(), torch.randn(2, 3, 8, 8), ratio=0.5, target_latency=0.5)
    with pytest.raises(PruneConfigError, match="latency.grid"):
        prune(two_convs(), torch.randn(2, 3, 8, 8), target_latency=0.5, latency=LatencySettings(grid=1))


def test_a_depthwise_layer_is_timed_and_predicted_by_its_output_width():
    """Real timings (a few tiny calls): the depthwise conv is rebuilt with one group per channel at
    every width of its grid, and predicting at a kept width reads the table, not an extrapolation."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 8, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    layers = {s.name: s for s in find_layers(model, graph, x, grid=3, round_to=4)}
    dw = layers["1"]
    assert dw.depthwise and dw.cin_grid == (16,) and dw.cout_grid == (4, 12, 16)
    rng = torch.get_rng_state()
    table = measure_tables([dw], LatencySettings(batch_size=2, repeats=1))["1"]
    assert torch.equal(rng, torch.get_rng_state())  # timing leaves the caller's random stream alone
    assert all(v > 0 for v in table.ms[0])
    kept = {dw.out_slot: 12}
    assert dw.widths(kept) == (16, 12) and table.predict(*dw.widths(kept)) == pytest.approx(table.ms[0][1])


def test_layers_of_the_same_shape_are_timed_once_and_share_their_table():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    layers = find_layers(model, build_dependency_graph(model, (x,)), x, grid=5, round_to=4)
    timed = []

    def timer(spec, points, settings):
        timed.append(spec.name)
        return [float(len(timed) + ci * co) for ci, co in points]

    tables = measure_tables(layers, LatencySettings(), timer)
    assert timed == ["0", "2", "7"] and tables["4"] == tables["2"]


def test_batch_norms_are_in_the_table_at_the_widths_of_their_channels():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = build_dependency_graph(model, (x,))
    bn = {s.name: s for s in find_layers(model, graph, x, grid=5, round_to=4)}["1"]
    assert bn.kind == "batchnorm" and bn.cin_grid == (16,) and bn.cout_grid == (4, 8, 12, 16) and bn.widths({bn.out_slot: 8}) == (16, 8)
    table = measure_tables([bn], LatencySettings(batch_size=2, repeats=1))["1"]
    assert all(v > 0 for v in table.ms[0])


def test_sensitivity_costs_follow_each_groups_measured_loss_curve():
    """A group whose channels the classifier reads through a large weight hurts more when pruned: its curve is
    steeper, and every unit costs at least a small floor; units keep the scores' order."""
    from slimforge.prune.sensitivity import sensitivity_costs

    model = two_convs()
    x = torch.randn(64, 3, 8, 8)
    y = model(x).argmax(1)  # the model's own predictions: any removal raises the loss
    graph = build_dependency_graph(model, (x[:2],))
    scores = [np.arange(1, len(g.units) + 1, dtype=float) for g in graph.groups]
    groups = list(range(len(graph.groups)))
    costs = sensitivity_costs(model, graph, scores, [(x, y)], None, groups, round_to=4)
    for g, c in zip(graph.groups, costs):
        assert c.shape == (len(g.units),) and (c > 0).all()
    with pytest.raises(Exception, match="calibration"):
        sensitivity_costs(model, graph, scores, None, None, groups, round_to=4)


def test_sensitivity_allocation_spares_the_group_whose_loss_rises_fastest(tmp_path):
    """Conv 0's channels save 1 ms each, conv 2's 0.016 ms: on flat scores the greedy strips conv 0. When the
    classifier reads nothing from conv 2's first eight channels (the first the scores' order offers), the
    measured loss says they are free, and the sensitivity allocation takes them instead."""
    model = two_convs()
    x = torch.randn(64, 3, 8, 8)
    graph = build_dependency_graph(model, (x[:2],))
    groups = {g.module: i for i, g in enumerate(graph.groups)}
    with torch.no_grad():
        model[6].weight[:, :8] = 0.0
    y = model(x).argmax(1)
    scores = [np.ones(len(g.units)) for g in graph.groups]

    def model_timer(original, candidate, batch, settings, channels_last):
        return 10.0, 10.0 * sum(p.numel() for p in candidate.parameters()) / sum(p.numel() for p in original.parameters())

    def removed(allocation):
        settings = LatencySettings(batch_size=2, channels_last=False, max_rounds=1, cache_dir=str(tmp_path), allocation=allocation)
        pruned, _ = choose_by_latency(model, graph, scores, 0.995, 4, x[:2], settings, timer=fake_timer, model_timer=model_timer,
                                      calibration=[(x, y)])
        return {m: sum(u.root in pruned for u in graph.groups[g].units) for m, g in groups.items()}

    assert removed("importance")["0"] > 0  # conv 0's expensive channels go first on flat scores
    by_loss = removed("sensitivity")
    assert by_loss["0"] == 0 and by_loss["2"] > 0
    with pytest.raises(Exception, match="allocation"):
        LatencySettings(allocation="magic").validate()


def test_uniform_allocation_takes_one_share_from_every_group_then_spends_what_rounding_left():
    """Conv 0's channels cost 1 ms each, conv 2's almost nothing. At 0.6 of 16.256 ms the greedy would strip
    conv 0; the uniform allocation takes the same share from both (8 of 16 at steps of 4: 8.064 ms), then gives
    back a step where the budget still allows it, the cheapest first: conv 2's (8.096 ms), not conv 0's (12.1 ms).
    The units removed are each group's least important."""
    model = two_convs()
    graph, layers, tables, groups = setup(model)
    scores = [np.arange(len(g.units), 0, -1, dtype=float) for g in graph.groups]  # the last units are the weakest
    pruned, predicted = select_uniform(graph, scores, layers, tables, 0.6, round_to=4)
    removed = {m: sorted(i for i, u in enumerate(graph.groups[g].units) if u.root in pruned) for m, g in groups.items()}
    assert removed["0"] == list(range(8, 16)) and removed["2"] == list(range(12, 16))
    assert predicted == pytest.approx(8.096 / 16.256, rel=1e-3) and predicted <= 0.6
    greedy, _ = select_by_latency(graph, [np.ones(len(g.units)) for g in graph.groups], layers, tables, 0.6, round_to=4)
    assert sum(u.root in greedy for u in graph.groups[groups["2"]].units) == 0  # the greedy takes only conv 0's


def test_uniform_allocation_keeps_everything_when_the_target_is_already_met_and_a_step_at_most():
    model = two_convs()
    graph, layers, tables, _ = setup(model)
    scores = [np.ones(len(g.units)) for g in graph.groups]
    assert select_uniform(graph, scores, layers, tables, 1.0, round_to=4) == (set(), 1.0)
    pruned, predicted = select_uniform(graph, scores, layers, tables, 0.01, round_to=4)  # unreachable: each group keeps a step
    assert len(pruned) == 24 and predicted > 0.01


def _wide_convs() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 4)).eval()


@pytest.mark.parametrize("block, expected", [(1, 8), (16, 16), (32, 32), (64, 8)])
def test_the_width_step_follows_the_staircase_the_latency_curve_has(block, expected):
    """Output channels computed in blocks (16 fp32 lanes with AVX-512): 24 channels cost what 32 do, so widths
    step by the block, up to 4x round_to; a curve that climbs with every channel keeps round_to, and so does one
    flat over the whole window timed (8 steps: nothing to read a staircase from)."""
    model = _wide_convs()
    x = torch.randn(2, 3, 8, 8)
    layers = find_layers(model, build_dependency_graph(model, (x,)), x, grid=5, round_to=8)

    def staircase(spec, points, settings):
        return [0.01 * ci * math.ceil(co / block) * block for ci, co in points]

    assert latency_step(layers, LatencySettings(), 8, staircase) == expected


def test_noisy_flat_treads_still_read_as_steps_and_noise_alone_does_not():
    model = _wide_convs()
    x = torch.randn(2, 3, 8, 8)
    layers = find_layers(model, build_dependency_graph(model, (x,)), x, grid=5, round_to=8)
    rng = np.random.default_rng(0)

    def stepped(spec, points, settings):  # 16-blocks with 5% noise
        return [math.ceil(co / 16) * (1 + 0.05 * rng.standard_normal()) for _, co in points]

    def noise(spec, points, settings):  # no dependence on width at all
        return [1 + 0.05 * rng.standard_normal() for _ in points]

    assert latency_step(layers, LatencySettings(), 8, stepped) == 16
    assert latency_step(layers, LatencySettings(), 8, noise) == 8


def test_pruning_records_the_width_step_it_used(tmp_path):
    """latency.steps=True: every kept width of a tabled conv is a multiple of the step found, and the result says
    so; the default (steps=False) keeps round_to."""
    def staircase(spec, points, settings):
        return [0.001 * ci * math.ceil(co / 16) * 16 * (1 if spec.kind != "batchnorm" else 0.1) for ci, co in points]

    def model_timer(original, pruned, batch, settings, channels_last):
        return 10.0, 10.0 * sum(p.numel() for p in pruned.parameters()) / sum(p.numel() for p in original.parameters())

    from slimforge.prune.latency import choose_by_latency

    for steps, step in ((True, 16), (False, 8)):
        model = _wide_convs()
        x = torch.randn(2, 3, 8, 8)
        graph = build_dependency_graph(model, (x,))
        scores = [np.arange(1, len(g.units) + 1, dtype=float) for g in graph.groups]
        settings = LatencySettings(batch_size=2, cache_dir=str(tmp_path / str(steps)), channels_last=False,
                                   **({"steps": True} if steps else {}))
        pruned, result = choose_by_latency(model, graph, scores, 0.5, 8, x, settings, timer=staircase, model_timer=model_timer)
        assert result.round_to == step
        kept = {len(r) - sum(1 for u in r if int(u) in pruned) for r in graph.roots}
        assert kept and all(k % step == 0 for k in kept if k not in (3, 4)), kept
