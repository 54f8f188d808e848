#!/usr/bin/env python3
"""Reference data for the two hand-written IR blocks in this folder.

    /path/to/python-with-torch make_reference.py

For each block it builds the same computation in PyTorch (BN-Inception's
`inception_3a` as in pretrainedmodels' bninception.py; torchvision resnet50's
`layer2.0` Bottleneck), with seeded random weights and randomized BatchNorm
statistics (so a mishandled BatchNorm changes the output), in eval mode, and
writes `<block>.weights.safetensors` (the state_dict's names, including the
int64 `num_batches_tracked` entries real checkpoints carry), `<block>.input.npy`
and `<block>.output.npy`. It also writes `<block>.kir`, the block in kiln's
text format, from the same layer list, and prints the float32-vs-float64
difference of PyTorch itself (the precision floor of the comparison).
Made with torch 2.15, torchvision 0.29.
"""
import os
import re
import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file
from torchvision.models.resnet import Bottleneck

HERE = os.path.dirname(os.path.abspath(__file__))


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g) * 0.1
            m.running_mean.data = torch.randn(c, generator=g) * 0.1
            m.running_var.data = torch.rand(c, generator=g) * 1.5 + 0.5


def float_text(v):
    """A float as kiln's printer writes it: shortest form, `1e-5` rather than `1e-05`."""
    return re.sub(r"e(-?)0*(\d)", r"e\1\2", repr(float(v)))


class Text:
    """Writes kiln's text format: values numbered in order, params declared before use."""

    def __init__(self, name):
        self.lines = [f'graph "{name}"']
        self.n = 0

    def value(self, rhs, shape):
        v = f"%{self.n}"
        self.n += 1
        self.lines.append(f"{v} = {rhs} : f32[{','.join(map(str, shape))}]")
        return v

    def param(self, name, shape):
        self.lines.append(f"@{name} = param : f32[{','.join(map(str, shape))}]")
        return f"@{name}"

    def conv(self, x, name, conv, out_shape):
        w = self.param(f"{name}.weight", conv.weight.shape)
        ops = [x, w]
        if conv.bias is not None:
            ops.append(self.param(f"{name}.bias", conv.bias.shape))
        kh, kw = conv.kernel_size
        ph, pw = conv.padding
        sh, sw = conv.stride
        attrs = (f"kernel=[{kh},{kw}], stride=[{sh},{sw}], pad=[{ph},{pw},{ph},{pw}], dilation=[1,1], "
                 f"groups=1, bias={'true' if conv.bias is not None else 'false'}, epilogue={{residual=false, relu=false}}")
        return self.value(f"conv2d({', '.join(ops)}) {{{attrs}}}", out_shape)

    def bn(self, x, name, bn, shape):
        ps = [self.param(f"{name}.{p}", [bn.num_features]) for p in ("weight", "bias", "running_mean", "running_var")]
        return self.value(f"batch_norm({x}, {', '.join(ps)}) {{eps={float_text(bn.eps)}, momentum={float_text(bn.momentum)}, training=false}}", shape)

    def relu(self, x, shape):
        return self.value(f"relu({x})", shape)

    def write(self, path, outputs):
        self.lines.append(f"output {', '.join(outputs)}")
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


class Inception3a(nn.Module):
    """pretrainedmodels bninception.py, lines 42-63 and 265-290: the same layers and names."""

    def __init__(self):
        super().__init__()
        conv = lambda i, o, k: nn.Conv2d(i, o, kernel_size=k, stride=1, padding=k // 2)
        self.branches = [
            [("inception_3a_1x1", conv(192, 64, 1))],
            [("inception_3a_3x3_reduce", conv(192, 64, 1)), ("inception_3a_3x3", conv(64, 64, 3))],
            [("inception_3a_double_3x3_reduce", conv(192, 64, 1)), ("inception_3a_double_3x3_1", conv(64, 96, 3)),
             ("inception_3a_double_3x3_2", conv(96, 96, 3))],
            [("pool", None), ("inception_3a_pool_proj", conv(192, 32, 1))],
        ]
        for branch in self.branches:
            for name, c in branch:
                if c is not None:
                    setattr(self, name, c)
                    setattr(self, name + "_bn", nn.BatchNorm2d(c.out_channels, affine=True))
        self.inception_3a_pool = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)

    def forward(self, x):
        outs = []
        for branch in self.branches:
            y = x
            for name, _ in branch:
                if name == "pool":
                    y = self.inception_3a_pool(y)
                else:
                    y = torch.relu(getattr(self, name + "_bn")(getattr(self, name)(y)))
            outs.append(y)
        return torch.cat(outs, 1)

    def text(self, shape):
        t = Text("inception_3a")
        x = t.value(f'input "x"', shape)
        ends = []
        n, _, h, w = shape
        for branch in self.branches:
            y = x
            for name, c in branch:
                if c is None:
                    y = t.value(f"avg_pool({y}) {{kernel=[3,3], stride=[1,1], pad=[1,1,1,1], ceil_mode=true, count_include_pad=true}}",
                                [n, 192, h, w])
                    continue
                s = [n, c.out_channels, h, w]
                y = t.relu(t.bn(t.conv(y, name, c, s), name + "_bn", getattr(self, name + "_bn"), s), s)
            ends.append(y)
        out = t.value(f"concat({', '.join(ends)}) {{axis=1}}", [n, 256, h, w])
        return t, [out]


def bottleneck_text(block, shape):
    t = Text("resnet_bottleneck")
    n, c, h, w = shape
    x = t.value('input "x"', shape)
    s1 = [n, 128, h, w]
    s2 = [n, 128, h // 2, w // 2]
    s3 = [n, 512, h // 2, w // 2]
    y = t.relu(t.bn(t.conv(x, "layer2.0.conv1", block.conv1, s1), "layer2.0.bn1", block.bn1, s1), s1)
    y = t.relu(t.bn(t.conv(y, "layer2.0.conv2", block.conv2, s2), "layer2.0.bn2", block.bn2, s2), s2)
    y = t.bn(t.conv(y, "layer2.0.conv3", block.conv3, s3), "layer2.0.bn3", block.bn3, s3)
    d = t.bn(t.conv(x, "layer2.0.downsample.0", block.downsample[0], s3), "layer2.0.downsample.1", block.downsample[1], s3)
    out = t.relu(t.value(f"add({y}, {d})", s3), s3)
    return t, [out]


def export(name, module, shape, prefix, text_fn, seed):
    randomize(module, seed)
    module.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = module(x)
        y64 = module.double()(x.double())
        module.float()
    sd = {prefix + k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(sd, os.path.join(HERE, f"{name}.weights.safetensors"))
    np.save(os.path.join(HERE, f"{name}.input.npy"), x.numpy())
    np.save(os.path.join(HERE, f"{name}.output.npy"), y.numpy())
    text, outs = text_fn()
    text.write(os.path.join(HERE, f"{name}.kir"), outs)
    diff = (y.double() - y64).abs().max().item()
    print(f"{name}: output {list(y.shape)}, max |y| {y.abs().max().item():.4f}, f32 vs f64 {diff:.3e}")


def main():
    torch.manual_seed(0)
    inc = Inception3a()
    export("inception_3a", inc, [1, 192, 28, 28], "", lambda: inc.text([1, 192, 28, 28]), seed=3)
    downsample = nn.Sequential(nn.Conv2d(256, 512, 1, stride=2, bias=False), nn.BatchNorm2d(512))
    block = Bottleneck(256, 128, stride=2, downsample=downsample)
    export("resnet_bottleneck", block, [1, 256, 28, 28], "layer2.0.",
           lambda: bottleneck_text(block, [1, 256, 28, 28]), seed=5)


if __name__ == "__main__":
    main()
