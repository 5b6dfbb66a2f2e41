"""Hugging Face Longformer's self-attention (``LongformerSelfAttention``, also LED's encoder): each token attends to a
window of its neighbours, and a few global tokens to every token through their own projections (``query_global``,
``key_global``, ``value_global``).

Its forward merges the heads' output back to the *input's* width (``attn_output.transpose(0, 1).reshape(seq_len,
batch_size, embed_dim)`` with ``embed_dim`` read from ``hidden_states``), which equals the heads' width only while no
head is pruned; the heads and the residual width stayed, and longformer-base lost 12.8% of its parameters at ratio 0.3.
The form's ``built_heads`` lets the tensors it builds with ``self.num_heads`` (the global keys' and values'
``new_zeros``) follow the pruned heads, and ``built_batch_heads`` those it builds ``batch * heads`` long (the sliding
chunks' scores).

The stand-in forward is transformers' own source with that one merge written ``reshape(seq_len, batch_size, -1)``,
compiled at its own file and line numbers: ``torch.export.draft_export``, which captures the branch on
``is_global_attn``, finds the frame's source there. It is installed before the capture; ``sync`` keeps it where heads
went (and makes the swap when a plan is replayed on load), and ``embed_dim``, which the forward checks against its input
and sizes the global tokens' copy of it with, follows the input's width. An example without global tokens (LED's
``global_attention_mask`` not given) never reaches the global projections: they are sliced as their local twins are
(``AttentionForm.twins``), so the pruned model still runs with global tokens.

transformers is imported nowhere here: the class is recognised by name and attributes.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune._hf_input_width_attention import edited_forward
from slimforge.prune.attention import AttentionForm, Swap, _int, _linear, register_attention_form, register_stand_in

_OWN = {"LongformerSelfAttention": "longformer.modeling_longformer", "LEDEncoderSelfAttention": "led.modeling_led"}
_MERGE = ".reshape(seq_len, batch_size, embed_dim)"
_PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
_STAND_INS: dict[type, type | None] = {}


def _matches(module: nn.Module) -> bool:
    return (_own_class(type(module)).__name__ in _OWN and all(_linear(module, n) for n in _PROJECTIONS)
            and all(_int(module, n) for n in ("num_heads", "head_dim", "embed_dim")))


def _own_class(cls: type) -> type:
    return cls.__mro__[1] if cls.__module__ == __name__ else cls


def _merged_to_heads(source: str) -> str | None:
    """The one merge to the input's width written to the heads' width; None where there is no such merge (another
    transformers version) or more than one."""
    return source.replace(_MERGE, ".reshape(seq_len, batch_size, -1)") if source.count(_MERGE) == 1 else None


def _stand_in_class(cls: type) -> type | None:
    own = _own_class(cls)
    if own not in _STAND_INS:
        forward = edited_forward(own, _merged_to_heads) if own.__module__.startswith("transformers.") else None
        _STAND_INS[own] = None if forward is None else type(f"Prunable{own.__name__}", (own,), {
            "forward": forward, "__module__": __name__, "__qualname__": f"Prunable{own.__name__}",
            "__doc__": f"transformers' {own.__name__}, its heads merged to their own width."})
    return _STAND_INS[own]


def _use(module: nn.Module) -> None:
    stand_in = _stand_in_class(type(module))
    if stand_in is not None:
        module.__class__ = stand_in


def _heads_narrower(module: nn.Module) -> bool:
    """Its own forward can no longer run it: the heads' width is not its input's."""
    return module.query.out_features != module.query.in_features


def _sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.query.out_features // module.head_dim
    module.embed_dim = module.query.in_features
    if _heads_narrower(module):
        _use(module)
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-longformer-attention",
                        AttentionForm(_matches, lambda m: m.head_dim, _sync, built_heads=lambda m: m.num_heads,
                                      built_batch_heads=True, twins=lambda m: [(f"{n}_global", n) for n in ("query", "key", "value")]),
                        "Hugging Face Longformer / LED encoder (sliding-window and global attention; heads merged to the "
                        "input's width by its own forward, to their own width by a stand-in once heads go)")
for _name, _module in _OWN.items():
    register_stand_in(f"transformers.models.{_module}.{_name}",
                      Swap(_matches, _heads_narrower, _use, lambda m, cls: setattr(m, "__class__", cls)))
