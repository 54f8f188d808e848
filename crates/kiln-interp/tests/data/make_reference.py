#!/usr/bin/env python3
"""PyTorch reference outputs for kiln-interp's op tests (tests/pytorch.rs).

Writes, beside this script:
  reference.safetensors  float32 tensors: `<case>.in<i>` (the operands) and `<case>.out` (PyTorch's output)
  reference.json         [{"name": case, "op": <kiln's serde JSON of the op>, "inputs": n}, ...]

Every case is a single kiln op on small random operands (torch.Generator seeded 0), with the
attribute combinations where PyTorch's semantics are easy to get wrong: grouped, dilated,
strided and asymmetrically padded convs; ceil-mode pools whose last window starts in the
padding or overhangs it; count_include_pad both ways; LRN with odd and even sizes;
BatchNorm in both modes; softmax on inner axes; cross-entropy with label smoothing.
The references are computed in float64 (from the float32 operands) and rounded once, so
they hold the interpreter to its own standard (f64 sums) rather than to PyTorch's f32 rounding.
kiln pads per side ([top, left, bottom, right]); PyTorch's convs pad symmetrically, so an
asymmetric conv is F.pad followed by an unpadded conv.

Usage: /work/pyenv/bin/python make_reference.py   (torch 2.15, safetensors 0.8)
"""
import json, os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

gen = torch.Generator().manual_seed(0)
tensors, cases = {}, []


def rand(*shape, lo=-1.0, hi=1.0):
    """f32 random values, widened to f64: the operands are stored as f32, and PyTorch computes
    the reference in f64 from exactly those values, so the reference is (nearly) exact."""
    return (torch.rand(*shape, generator=gen) * (hi - lo) + lo).double()


def case(name, op, inputs, out):
    for i, t in enumerate(inputs):
        tensors[f"{name}.in{i}"] = t.float().clone().contiguous()
    tensors[f"{name}.out"] = out.float().clone().contiguous()
    cases.append({"name": name, "op": op, "inputs": len(inputs)})


def conv(name, x, w, b, stride, pad, dilation, groups):
    """pad = [top, left, bottom, right] as kiln has it."""
    y = F.conv2d(F.pad(x, (pad[1], pad[3], pad[0], pad[2])), w, b, stride, 0, dilation, groups)
    op = {"op": "conv2d", "kernel": list(w.shape[2:]), "stride": stride, "pad": pad,
          "dilation": dilation, "groups": groups, "bias": b is not None,
          "epilogue": {"residual": False, "relu": False}}
    case(name, op, [x, w] + ([b] if b is not None else []), y)


conv("conv_plain", rand(1, 3, 6, 5), rand(4, 3, 3, 3), None, [1, 1], [1, 1, 1, 1], [1, 1], 1)
conv("conv_groups_dilation_bias", rand(2, 4, 7, 6), rand(6, 2, 3, 2), rand(6), [1, 2], [2, 1, 2, 1], [2, 1], 2)
conv("conv_stride_asymmetric", rand(1, 2, 8, 7), rand(3, 2, 3, 3), rand(3), [2, 2], [0, 1, 2, 0], [1, 1], 1)
conv("conv_depthwise", rand(1, 3, 5, 5), rand(3, 1, 3, 3), None, [2, 1], [1, 1, 1, 1], [1, 2], 3)
conv("conv_1x7", rand(1, 2, 4, 9), rand(2, 2, 1, 7), rand(2), [1, 1], [0, 3, 0, 3], [1, 1], 1)


def pool(name, kind, x, k, s, p, ceil, include=None):
    if kind == "max_pool":
        y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        op = {"op": kind, "kernel": k, "stride": s, "pad": p * 2, "ceil_mode": ceil}
    else:
        y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include)
        op = {"op": kind, "kernel": k, "stride": s, "pad": p * 2, "ceil_mode": ceil,
              "count_include_pad": include}
    case(name, op, [x], y)


# Sizes chosen so that ceil mode adds a window, and in some cases that window starts in the
# end padding (dropped) or overhangs it.
pool("max_k3s2p1_ceil", "max_pool", rand(1, 2, 7, 6), [3, 3], [2, 2], [1, 1], True)
pool("max_k3s2_ceil", "max_pool", rand(1, 2, 8, 8), [3, 3], [2, 2], [0, 0], True)
pool("max_k2s2p1_ceil_drop", "max_pool", rand(1, 1, 5, 4), [2, 2], [2, 2], [1, 1], True)
pool("max_k3s1p1_ceil", "max_pool", rand(1, 2, 4, 4, lo=-3, hi=-1), [3, 3], [1, 1], [1, 1], True)
for include in (True, False):
    tag = "incl" if include else "excl"
    pool(f"avg_k3s2p1_ceil_{tag}", "avg_pool", rand(1, 2, 6, 7), [3, 3], [2, 2], [1, 1], True, include)
    pool(f"avg_k2s2p1_ceil_{tag}", "avg_pool", rand(1, 1, 5, 6), [2, 2], [2, 2], [1, 1], True, include)
    pool(f"avg_k3s1p1_{tag}", "avg_pool", rand(2, 1, 4, 3), [3, 3], [1, 1], [1, 1], False, include)
    pool(f"avg_k3x2s2_ceil_{tag}", "avg_pool", rand(1, 1, 6, 5), [3, 2], [2, 2], [1, 0], True, include)

x = rand(2, 3, 4, 4)
case("global_avg_pool", {"op": "global_avg_pool"}, [x], x.mean((2, 3), keepdim=True))

x, g, b = rand(3, 4, 3, 2, lo=-2, hi=3), rand(4, lo=0.5, hi=1.5), rand(4)
m, v = rand(4, lo=-0.2, hi=0.2), rand(4, lo=0.5, hi=1.5)
case("bn_inference", {"op": "batch_norm", "eps": 1e-5, "momentum": 0.1, "training": False},
     [x, g, b, m, v], F.batch_norm(x, m, v, g, b, training=False, eps=1e-5))
case("bn_training", {"op": "batch_norm", "eps": 1e-3, "momentum": 0.1, "training": True},
     [x, g, b, m, v], F.batch_norm(x, m.clone(), v.clone(), g, b, training=True, eps=1e-3))
x2 = rand(5, 3, lo=-1, hi=4)
case("bn_training_rank2", {"op": "batch_norm", "eps": 1e-5, "momentum": 0.1, "training": True},
     [x2, g[:3], b[:3], m[:3], v[:3]], F.batch_norm(x2, None, None, g[:3], b[:3], training=True, eps=1e-5))

for size, alpha, beta, k in [(5, 1e-4, 0.75, 2.0), (4, 0.5, 0.6, 1.0), (3, 2.0, 1.5, 0.5)]:
    x = rand(1, 6, 2, 3, lo=-2, hi=2)
    case(f"lrn_size{size}", {"op": "lrn", "size": size, "alpha": alpha, "beta": beta, "k": k},
         [x], F.local_response_norm(x, size, alpha, beta, k))

x = rand(2, 4, 2, 3, lo=-5, hi=5)
case("softmax_axis1", {"op": "softmax", "axis": 1}, [x], F.softmax(x, 1))
case("softmax_axis0", {"op": "softmax", "axis": 0}, [x], F.softmax(x, 0))

x, w, b = rand(3, 7), rand(5, 7), rand(5)
case("dense", {"op": "dense", "bias": True}, [x, w, b], F.linear(x, w, b))

logits = rand(4, 6, lo=-3, hi=3)
labels = torch.tensor([5, 0, 2, 2])
for eps in (0.0, 0.1, 1.0):
    case(f"cross_entropy_ls{eps}", {"op": "softmax_cross_entropy", "label_smoothing": eps},
         [logits, labels.double()], F.cross_entropy(logits, labels, label_smoothing=eps))

here = os.path.dirname(os.path.abspath(__file__))
save_file(tensors, os.path.join(here, "reference.safetensors"))
with open(os.path.join(here, "reference.json"), "w") as f:
    f.write("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
print(len(cases), "cases,", sum(t.numel() for t in tensors.values()), "floats")
