"""MF scoring (256 users x 100 candidates, dim 32, 9,724 items), 1 thread: the shipped eager paths
(``slimforge.recsys._rowwise``) against the same dot products compiled by inductor, fp32 and int8/int4 row-wise
codes, random table (latency does not depend on the weights). Timed in turns, 300 rounds, medians (issue 21: is a
compiled quantized path faster than the fastest fp32 one?).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recsys_compiled_scoring.py
"""
import time, statistics, torch
torch.set_num_threads(1)
torch.manual_seed(0)
N, D, R, L = 9724, 32, 256, 100
table = torch.randn(N, D)
ids = torch.randint(0, N, (R, L))
vec = torch.randn(R, D)
lo_, hi_ = table.min(1).values, table.max(1).values
def quant(bits):
    m = (1 << bits) - 1
    scale = ((hi_ - lo_) / m).clamp_min(1e-8)
    q = ((table - lo_[:, None]) / scale[:, None]).round().clamp(0, m).to(torch.uint8)
    if bits == 4:
        q = q[:, 0::2] | (q[:, 1::2] << 4)
    return q.contiguous(), scale.half().float(), lo_.half().float()
q8, s8, o8 = quant(8)
q4, s4, o4 = quant(4)

def fp32_eager(table, ids, vec):
    rows = torch.nn.functional.embedding(ids, table)
    return torch.bmm(vec.unsqueeze(1), rows.transpose(1, 2)).squeeze(1)
def fp32_fused(table, ids, vec):
    return (table[ids] * vec.unsqueeze(1)).sum(-1)
def int8_fused(q, s, o, ids, vec):
    dot = (q[ids].float() * vec.unsqueeze(1)).sum(-1)
    return s[ids] * dot + o[ids] * vec.sum(-1, keepdim=True)
def int4_fused(q, s, o, ids, vec):
    b = q[ids]
    dot = ((b & 15).float() * vec[:, None, 0::2]).sum(-1) + ((b >> 4).float() * vec[:, None, 1::2]).sum(-1)
    return s[ids] * dot + o[ids] * vec.sum(-1, keepdim=True)

from slimforge.recsys import _rowwise
fused4 = torch.cat([q4, torch.stack([s4.half(), o4.half()], 1).view(torch.uint8)], 1).contiguous()
fused8 = torch.cat([q8, torch.stack([s8.half(), o8.half()], 1).view(torch.uint8)], 1).contiguous()
cands = {
    "fp32 eager (shipped)": lambda: fp32_eager(table, ids, vec),
    "int8 eager (shipped)": lambda: _rowwise.quantized_grouped_dot(fused8, 8, ids, vec),
    "int4 eager (shipped)": lambda: _rowwise.quantized_grouped_dot(fused4, 4, ids, vec),
}
c32, c8, c4 = torch.compile(fp32_fused), torch.compile(int8_fused), torch.compile(int4_fused)
cands["fp32 compiled"] = lambda: c32(table, ids, vec)
cands["int8 compiled"] = lambda: c8(q8, s8, o8, ids, vec)
cands["int4 compiled"] = lambda: c4(q4, s4, o4, ids, vec)
ref = fp32_eager(table, ids, vec)
with torch.no_grad():
    for k, f in cands.items():
        out = f(); print(k, "max diff vs fp32", (out - ref).abs().max().item(), flush=True)
    times = {k: [] for k in cands}
    for r in range(300):
        for k, f in cands.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
base = statistics.median(times["fp32 eager (shipped)"]); basec = statistics.median(times["fp32 compiled"])
for k, v in times.items():
    m = statistics.median(v)
    print(f"{k:22s} {m*1e3:.3f} ms  x eager fp32 {m/base:.2f}  x compiled fp32 {m/basec:.2f}")
