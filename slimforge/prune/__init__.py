"""Pruning: structured (channels, neurons, heads) and unstructured (sparsity masks).

    model = slimforge.prune(model, torch.randn(2, 3, 224, 224), ratio=0.3)

* :func:`prune` removes whole units and returns an ordinary smaller dense model; the plan is
  recorded on the model's spec so ``slimforge.save``/``load`` rebuild it without pickle.
* :func:`apply_plan` replays a recorded plan onto a freshly built model.
* :mod:`slimforge.prune.attention` lists the attention forms that lose whole heads.
* :mod:`slimforge.prune.sparsity` holds magnitude masks, the cubic schedule and N:M patterns,
  with trainer callbacks.
"""

from __future__ import annotations

from slimforge._callable import make_callable
from slimforge.prune import _timm_attention, _timm_hybrid_attention, _timm_stage_attention, _torchvision_attention  # noqa: F401  (register timm's and torchvision's attention forms)
from slimforge.prune import _hf_fused_attention  # noqa: F401  (register Phi-3's, GPTBigCode's, CodeGen's, Funnel's and LeViT's forms)
from slimforge.prune import _hf_layout_attention  # noqa: F401  (register Persimmon's, XLNet's, DeBERTa v1's and SqueezeBERT's forms)
from slimforge.prune import _hf_classic_attention  # noqa: F401  (register XLM's, CTRL's, OpenAI GPT's and ModernBERT's forms)
from slimforge.prune import _hf_latent_attention  # noqa: F401  (register the multi-head latent attention form)
from slimforge.prune import _hf_alibi_attention  # noqa: F401  (register MPT's form and its ALiBi stand-in)
from slimforge.prune import _hf_gated_bias_attention  # noqa: F401  (register WavLM's form and its stand-in)
from slimforge.prune import _hf_input_width_attention  # noqa: F401  (register the stand-in of attention that merges to its input's width)
from slimforge.prune import _hf_global_local_attention  # noqa: F401  (register PEGASUS-X's encoder form and its stand-in)
from slimforge.prune import _hf_conv_attention  # noqa: F401  (register ConvBERT's mixed attention and its stand-in)
from slimforge.prune import _hf_longformer_attention  # noqa: F401  (register Longformer's and LED's encoder attention form and its stand-in)
from slimforge.prune import _hf_focal_modulation  # noqa: F401  (register the stand-in of FocalNet's modulation)
from slimforge.prune import _hf_mamba_mixer  # noqa: F401  (register the Mamba and Mamba-2 mixer forms)
from slimforge.prune import _hf_delta_attention  # noqa: F401  (register the Kimi Delta Attention and Gated DeltaNet forms)
from slimforge.prune import _hf_moe_capture  # noqa: F401  (register the dense capture forward of Switch Transformers' and NLLB-MoE's experts)
from slimforge.prune._capture import register_capture_forward, register_op_rule
from slimforge.prune._graph import DependencyGraph
from slimforge.prune._trace import build_dependency_graph
from slimforge.prune.attention import list_attention_forms, register_attention_form
from slimforge.prune.errors import PruneConfigError, PruningError, UnsupportedOpError
from slimforge.prune.explain import KeptReason, explain_kept
from slimforge.prune.importance import list_importances, register_importance
from slimforge.prune.plan import apply_plan
from slimforge.prune.structured import DEFAULT_ROUND_TO, PruneConfig, prune

__all__ = [
    "DEFAULT_ROUND_TO",
    "DependencyGraph",
    "KeptReason",
    "PruneConfig",
    "PruneConfigError",
    "PruningError",
    "UnsupportedOpError",
    "apply_plan",
    "build_dependency_graph",
    "explain_kept",
    "list_attention_forms",
    "list_importances",
    "prune",
    "register_attention_form",
    "register_capture_forward",
    "register_importance",
    "register_op_rule",
]

make_callable(__name__, prune)  # slimforge.prune(model, x, ratio=0.5)
