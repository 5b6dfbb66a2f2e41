"""Bare variants of the sweep lists' models (issue 20): for each model with a head (ForSequenceClassification,
ForCausalLM, ForImageClassification, ForMaskedLM, ForConditionalGeneration), its base model built from the same
config (``AutoModel.from_config``), pruned at ratio 0.3 with the default ``keep_outputs`` ("auto"): does it prune,
do ``last_hidden_state`` / ``pooler_output`` keep their shapes, does the folder reload identically, what is projected.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/bare_variants.py sweep|hf_roundN [names...]
"""
import sys, warnings, torch, tempfile, time, traceback
warnings.filterwarnings("ignore")
sys.path[:0] = [".", "benchmarks", "benchmarks/heldout"]
import logging; logging.disable(logging.WARNING)
mod = sys.argv[1]
if mod == "sweep":
    import prune_hf_sweep as S
    names = list({**S.MODELS, **S.HELD_OUT})
else:
    src = open(f"benchmarks/heldout/{mod}.py").read().replace('if __name__ == "__main__":\n    S.main()', "").replace("\nS.main()", "")
    g = {"__name__": "x"}; exec(compile(src, mod, "exec"), g); S = g["S"]
    names = list(g.get("MODELS", {}) or getattr(S, "MODELS", {}))
import transformers, slimforge
def shapes(out):
    return {k: tuple(v.shape) for k, v in out.items() if isinstance(v, torch.Tensor)} if isinstance(out, dict) else None
only = sys.argv[2:] or names
for name in only:
    try:
        torch.manual_seed(0)
        model, inputs = S.build(name)
    except Exception:
        continue
    cls = type(model).__name__
    if not any(cls.endswith(s) for s in ("ForSequenceClassification", "ForCausalLM", "ForImageClassification", "ForMaskedLM", "ForConditionalGeneration")):
        continue
    try:
        base = transformers.AutoModel.from_config(model.config).eval()
    except Exception as e:
        continue
    if type(base) is type(model):
        continue
    try:
        with torch.no_grad(): before = shapes(base(**inputs))
    except Exception as e:
        continue
    n0 = sum(p.numel() for p in base.parameters())
    try:
        slimforge.prune(base, example_kwargs=inputs, ratio=0.3)
        with torch.no_grad(): after = shapes(base.eval()(**inputs))
        n1 = sum(p.numel() for p in base.parameters())
        with tempfile.TemporaryDirectory() as d:
            slimforge.save(base, d)
            again = slimforge.load(d).eval()
            with torch.no_grad():
                o1, o2 = base(**inputs), again(**inputs)
            k = next(k for k, v in o1.items() if isinstance(v, torch.Tensor))
            diff = (o1[k] - o2[k]).abs().max().item()
        proj = list(getattr(base, "slimforge_outputs", {}).keys())
        same = all(before.get(k) == v for k, v in after.items() if k in before and k in ("last_hidden_state", "pooler_output"))
        print(f"| {name} | {type(base).__name__} | yes | {1 - n1/n0:.1%} | {'kept' if same else 'CHANGED'} | {diff:.1e} | {','.join(proj) or '-'} |", flush=True)
    except Exception as e:
        print(f"| {name} | {type(base).__name__} | no | - | - | - | {type(e).__name__}: {str(e)[:120]} |", flush=True)
