"""Mamba-2 mixers in Hugging Face transformers (Mamba-2, Bamba, Zamba2, Falcon-H1, Nemotron-H, Granite MoE hybrid):
whole state-space heads go.

A Mamba-2 head h is its ``head_dim`` rows of the gate z and of the input x in ``in_proj``, its one time-step row dt,
the matching ``conv1d`` channels of x, ``A_log[h]``, ``D[h]``, ``dt_bias[h]``, its channels of the gated norm and its
columns of ``out_proj``. B and C (``n_groups * ssm_state_size`` rows each, shared by the heads of a group) stay whole.
``in_proj``'s output is split at sizes the mixer recomputes from ``intermediate_size``, ``conv_dim`` and
``num_heads``; ``sync`` brings those back in line with the sliced ``A_log``, and the gated norm's ``group_size``
with them.

transformers is imported nowhere here: a mixer is recognised by its attributes, as every copy of the Mamba-2 mixer
in transformers keeps the same names.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune.attention import AttentionForm, _int, _linear, register_attention_form

_SIZES = ("num_heads", "head_dim", "n_groups", "ssm_state_size", "intermediate_size", "conv_dim")


def _matches(module: nn.Module) -> bool:
    return (all(isinstance(getattr(module, p, None), nn.Parameter) for p in ("A_log", "D", "dt_bias"))
            and all(_int(module, s) for s in _SIZES) and _linear(module, "in_proj") and _linear(module, "out_proj")
            and isinstance(getattr(module, "conv1d", None), nn.Conv1d) and module.A_log.dim() == 1)


def _sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.A_log.numel()
    module.intermediate_size = module.num_heads * module.head_dim
    module.conv_dim = module.conv1d.weight.shape[0]
    shared = module.conv_dim - module.intermediate_size  # B and C: 2 * n_groups * ssm_state_size channels
    if module.n_groups == 1:  # one group: its state channels can go (B's and C's together)
        module.ssm_state_size = shared // 2
    else:  # several: a group's state channels are merged by its (n_groups, ssm_state_size) view, whole groups go
        module.n_groups = shared // (2 * module.ssm_state_size)
    norm = getattr(module, "norm", None)
    if norm is not None and _int(norm, "group_size"):
        norm.group_size = module.intermediate_size // module.n_groups
    return {}


register_attention_form("hf-mamba2-mixer", AttentionForm(
    _matches, lambda m: m.head_dim, _sync, adaptive_splits=True, built_heads=lambda m: m.num_heads,
    other_head_dims=lambda m: (m.ssm_state_size, m.intermediate_size // m.n_groups)),
                        "Hugging Face Mamba-2 mixers (Mamba-2, Bamba, Zamba2, Falcon-H1, Nemotron-H, Granite MoE hybrid): "
                        "state-space heads, B and C whole")


def _matches_selective(module: nn.Module) -> bool:
    return (all(isinstance(getattr(module, p, None), nn.Parameter) for p in ("A_log", "D")) and module.A_log.dim() == 2
            and all(_int(module, s) for s in ("intermediate_size", "ssm_state_size", "time_step_rank"))
            and all(_linear(module, n) for n in ("in_proj", "x_proj", "dt_proj", "out_proj"))
            and isinstance(getattr(module, "conv1d", None), nn.Conv1d))


def _sync_selective(module: nn.Module) -> dict[str, int]:
    old, module.intermediate_size = module.intermediate_size, module.A_log.shape[0]
    for child in module.children():  # Falcon-Mamba's weightless dt norm keeps a dummy all-ones buffer of that width
        dummy = child._buffers.get("weight")
        if dummy is not None and dummy.shape == (old,) and old != module.intermediate_size and bool((dummy == 1).all()):
            child._buffers["weight"] = dummy.new_ones(module.intermediate_size)
    return {}


register_attention_form("hf-mamba-mixer", AttentionForm(
    _matches_selective, lambda m: 1, _sync_selective, built_heads=lambda m: m.intermediate_size),
    "Hugging Face Mamba (v1) mixers (Mamba, Falcon-Mamba, Jamba): each inner channel is a state-space 'head' of one "
    "channel, its scan state (intermediate_size, ssm_state_size) built in the forward")
