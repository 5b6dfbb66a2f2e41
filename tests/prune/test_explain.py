"""slimforge.prune.explain_kept: which op keeps a dimension whole."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge.prune as sp


class _FixedSplit(nn.Module):
    """A split into sizes fixed in the code keeps the split layer's outputs whole."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(8, 16)
        self.head = nn.Linear(16 + 10, 3)

    def forward(self, x):
        left, right = torch.split(self.a(x), [10, 6], dim=1)
        return self.head(torch.cat([torch.relu(self.b(x)), left], dim=1)) + right.sum(1, keepdim=True)


def test_the_op_that_pins_a_dimension_is_named_with_its_source_line():
    torch.manual_seed(0)
    model, x = _FixedSplit().eval(), torch.randn(4, 8)
    reason = sp.explain_kept(model, x, parameter="a.weight", dim=0)
    assert reason is not None and reason.kept == reason.size == 16
    assert "split" in reason.why and "torch.split" in reason.source and "a.weight dimension 0" in str(reason)
    assert sp.explain_kept(model, x, parameter="b.weight", dim=0) is None  # b's outputs can go
    assert sp.explain_kept(model, x, parameter="b.weight", dim=1) is not None  # its inputs are the model's input


def test_outputs_skipped_layers_and_bad_names():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval(), torch.randn(2, 8)
    assert "model's output" in sp.explain_kept(model, x, parameter="2.weight", dim=0).why
    assert sp.explain_kept(model, x, parameter="0.weight", dim=0) is None
    assert "skipped" in sp.explain_kept(model, x, parameter="0.weight", dim=0, skip=["0"]).why
    assert "size 1" in sp.explain_kept(nn.Linear(8, 1), torch.randn(2, 8), parameter="weight", dim=0).why
    with pytest.raises(sp.PruneConfigError, match="no parameter '0.wieght'.*0.weight"):
        sp.explain_kept(model, x, parameter="0.wieght")
    with pytest.raises(sp.PruneConfigError, match="dimension 2 does not exist"):
        sp.explain_kept(model, x, parameter="0.weight", dim=2)


def test_attention_of_no_known_form_is_named_when_its_heads_stay():
    class Attention(nn.Module):  # an integer head count and linear layers, no registered form
        def __init__(self) -> None:
            super().__init__()
            self.num_heads, self.qkv, self.proj = 2, nn.Linear(8, 24), nn.Linear(8, 8)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return self.proj(torch.softmax(q @ k.transpose(-1, -2), -1) @ v)

    model = nn.Sequential(nn.Linear(8, 8), Attention(), nn.Linear(8, 2)).eval()
    x = torch.randn(2, 5, 8)
    assert sp.explain_kept(model, x, parameter="1.qkv.weight", dim=0) is None  # one head in fact: its channels go
    from slimforge.prune import explain  # where a retry keeps its heads (its mode "opaque"), the reason names it

    tracer = explain._Tracer(model, explain.export_model(model, (x,), {}), (), attention_modes={type(model[1]): "opaque"})
    node = next(n for n in tracer.ep.graph.nodes if tracer.param_names.get(n.name) == "1.qkv.weight")
    why, module, _ = explain._describe(model, tracer, node)
    assert "matches no registered attention form" in why and module == "1"


class _Tied(nn.Module):
    """An output layer sharing the embedding's weight, and a layer the example never reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.body, self.unused = nn.Embedding(10, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.out = nn.Linear(16, 10, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, ids):
        return self.out(torch.relu(self.body(self.embed(ids))))


def test_a_tied_weight_under_either_name_and_a_layer_the_example_never_reaches():
    model, ids = _Tied().eval(), torch.randint(0, 10, (2, 5))
    reasons = [sp.explain_kept(model, ids, parameter=name, dim=0) for name in ("embed.weight", "out.weight")]
    assert reasons[0].why == reasons[1].why and "'embedding'" in reasons[0].why  # one weight, asked under either name
    assert sp.explain_kept(model, ids, parameter="body.weight", dim=0) is None
    reason = sp.explain_kept(model, ids, parameter="unused.weight", dim=0)
    assert reason is not None and "never reach" in reason.why and reason.module == "unused"
