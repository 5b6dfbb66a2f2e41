"""Op rules for recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``): their hidden units are prunable.

ATen runs a whole recurrent stack as one op (``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``) over a flat
list of weights, per layer and direction ``w_ih (gates*H, in)``, ``w_hh (gates*H, H)`` and the biases,
gates stacked along the rows (LSTM: input, forget, cell, output; GRU: reset, update, new). Hidden unit
``j`` is row ``j`` of every gate block, column ``j`` of ``w_hh`` and feature ``j`` of the output and of
the states. The module has one ``hidden_size`` for every layer and direction, so unit ``j`` goes from all
of them at once; the features of the first layer's input follow the layer before it; a
bidirectional layer's output (and the next layer's input) is the forward units, then the backward ones.

States built by the module itself (zeros of ``hidden_size``, when no ``hx`` is passed) follow the
pruned size; states passed in by the caller keep theirs, and so the hidden units. A layer with a
projection (``proj_size``) stays whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from slimforge.prune._capture import Label, Tracing, _none_like, _opname, _rule, _shape

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# Ops that build a fresh state from sizes (the module's own zeros): nothing of the caller's to keep.
_FACTORIES = ("zeros", "new_zeros", "zeros_like", "full", "new_full", "empty", "new_empty")


@_rule(*GATES)
def _recurrent(tr: Tracing, node: torch.fx.Node) -> Any:
    x, hx, params = node.args[0], node.args[1], list(node.args[2])
    has_biases, num_layers, bidirectional = node.args[3], node.args[4], node.args[7]
    gates = GATES[_opname(node.target)]
    directions = 2 if bidirectional else 1
    per_layer = len(params) // (num_layers * directions)
    labels = [tr.lab(p) for p in params]
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    lx = tr.lab(x) or [None] * len(_shape(x))
    if per_layer != (4 if has_biases else 2) or any(lab is None for lab in labels):  # a projection (w_hr), or untracked weights
        return _whole(tr, node, lx, labels, states)
    hidden = labels[0][0][: len(labels[0][0]) // gates]
    layer_input = lx[-1]
    for layer in range(num_layers):
        for d in range(directions):
            at = (layer * directions + d) * per_layer
            _tie_layer(tr, labels[at:at + per_layer], hidden, gates, layer_input)
            tr.mark_source(params[at], 0)
            _add_macs(tr, node, params[at:at + 2], labels[at:at + 2], layer_input, hidden)
        layer_input = np.concatenate([hidden] * directions)
    for state in states:
        _tie_state(tr, state, hidden)
    out = list(lx[:-1]) + [layer_input]
    state_label = [None] * (len(_shape(states[0])) - 1) + [hidden] if states else None
    return tuple([out] + [list(state_label) for _ in states])


def _tie_layer(tr: Tracing, labels: list[Label], hidden: np.ndarray, gates: int, layer_input: Any) -> None:
    """One layer and direction: every gate block's rows, the biases and w_hh's columns are unit j's."""
    size = len(hidden)
    for lab in labels:  # w_ih, w_hh, then the biases (gates*H,)
        for g in range(gates):
            tr.uf.tie(lab[0][g * size:(g + 1) * size], hidden)
    tr.uf.tie(labels[1][1], hidden)
    tr.uf.tie(labels[0][1], layer_input)


def _tie_state(tr: Tracing, state: Any, hidden: np.ndarray) -> None:
    lab = tr.lab(state)
    if isinstance(state, torch.fx.Node) and state.op == "call_function" and _opname(state.target) in _FACTORIES and lab:
        lab[-1] = hidden  # the module's own zeros, made with the synced hidden_size: their size follows it
        return
    tr.uf.tie(lab[-1] if lab is not None else None, hidden)


def _whole(tr: Tracing, node: torch.fx.Node, lx: Label, labels: list[Label | None], states: list[Any]) -> Any:
    """Keep the stack as it is: its inputs' features and every weight's dimensions stay."""
    tr.uf.pin(lx[-1] if lx else None)
    for lab in labels:
        tr.pin_label(lab)
    for state in states:
        tr.pin_label(tr.lab(state))
    return _none_like(node)


def _add_macs(tr: Tracing, node: torch.fx.Node, weights: list[Any], labels: list[Label], layer_input: Any, hidden: np.ndarray) -> None:
    """Per step and sample: w_ih @ x and w_hh @ h, rows counted through their (gate) elements."""
    steps = int(np.prod(_shape(node.args[0])[:-1]))
    tr.macs_terms.append([steps, labels[0][0], layer_input if layer_input is not None else _shape(weights[0])[1]])
    tr.macs_terms.append([steps, labels[1][0], hidden])
