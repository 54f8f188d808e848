#!/usr/bin/env python3
"""Reference data for kiln-models' tests, made with the reference implementations.

Writes, beside this script:
  state_dicts/<model>.txt   every floating-point tensor of the model's state_dict, one
                            `name d0,d1,...` a line (torchvision models built with weights=None;
                            pretrainedmodels' bninception with pretrained=None)
  blocks/<block>/           weights.safetensors (the block's state_dict, with the parameter names
                            the whole model gives them), input.npy, output.npy, info.json:
    inception_v3_mixed_6b   torchvision's own InceptionC class with in_channels=32,
                            channels_7x7=16 (the Mixed_6b structure at widths that keep the file
                            small), input 2x32x7x7, names prefixed `Mixed_6b.`
    bninception_3a          module 3a of pretrainedmodels' BNInception, captured from the real
                            model's `features` on a 1x3x64x64 input with forward hooks (its input
                            is what enters `inception_3a_1x1`, its output what enters
                            `inception_3b_1x1`, i.e. the model's own concatenation)
Weights are random (torch.manual_seed(0)), and every BatchNorm's statistics and affine
parameters are randomized as /work/shared/conformance/export_models.py does, so that a
mishandled BatchNorm shows. Eval mode, float32.

Usage: python make_references.py   (needs torch, torchvision, safetensors, numpy, pretrainedmodels)
"""
import hashlib
import json
import os

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


def bninception():
    import pretrainedmodels
    return pretrainedmodels.bninception(num_classes=1000, pretrained=None)


def tv(name, **kw):
    return lambda: getattr(torchvision.models, name)(weights=None, **kw)


STATE_DICTS = {
    "resnet34": tv("resnet34"),
    "resnet50": tv("resnet50"),
    "resnet101": tv("resnet101"),
    "resnet152": tv("resnet152"),
    "wide_resnet50_2": tv("wide_resnet50_2"),
    "wide_resnet101_2": tv("wide_resnet101_2"),
    "inception_v3": tv("inception_v3", aux_logits=False, init_weights=False),
    "inception_v3_aux": tv("inception_v3", aux_logits=True, init_weights=False),
    "googlenet_aux": tv("googlenet", aux_logits=True, init_weights=False),
    "bninception": bninception,
}


def write_state_dicts():
    d = os.path.join(HERE, "state_dicts")
    os.makedirs(d, exist_ok=True)
    for name, make in STATE_DICTS.items():
        sd = make().state_dict()
        lines = [f"# {name}: floating-point state_dict entries, torch {torch.__version__}, "
                 f"torchvision {torchvision.__version__}"]
        for k, v in sd.items():
            if v.is_floating_point():
                lines.append(f"{k} {','.join(str(s) for s in v.shape) or '-'}")
        with open(os.path.join(d, name + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(name, len(lines) - 1, "tensors")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_block(name, weights, x, y, extra):
    d = os.path.join(HERE, "blocks", name)
    os.makedirs(d, exist_ok=True)
    save_file({k: v.detach().contiguous().float() for k, v in weights.items()},
              os.path.join(d, "weights.safetensors"))
    np.save(os.path.join(d, "input.npy"), x.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "output.npy"), y.detach().numpy().astype(np.float32))
    info = dict(extra, block=name, input_shape=list(x.shape), output_shape=list(y.shape),
                max_abs_output=float(y.abs().max()), torch=torch.__version__)
    info["files"] = {f: sha(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f != "info.json"}
    with open(os.path.join(d, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(name, {k: v for k, v in info.items() if k != "files"})


def inception_v3_block():
    from torchvision.models.inception import InceptionC
    torch.manual_seed(0)
    block = InceptionC(32, channels_7x7=16)
    randomize_bn(block)
    block.eval()
    x = torch.randn(2, 32, 7, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = block(x)
    weights = {"Mixed_6b." + k: v for k, v in block.state_dict().items() if v.is_floating_point()}
    save_block("inception_v3_mixed_6b", weights, x, y,
               {"module": "torchvision.models.inception.InceptionC(32, channels_7x7=16)",
                "torchvision": torchvision.__version__})


def bninception_block():
    import pretrainedmodels
    torch.manual_seed(0)
    model = bninception()
    randomize_bn(model)
    model.eval()
    captured = {}

    def keep(key):
        def hook(module, args, out):
            captured[key] = args[0].clone()  # returns None: the module's output stays
        return hook

    model.inception_3a_1x1.register_forward_hook(keep("input"))
    model.inception_3b_1x1.register_forward_hook(keep("output"))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.features(x)
    weights = {k: v for k, v in model.state_dict().items()
               if k.startswith("inception_3a_") and v.is_floating_point()}
    save_block("bninception_3a", weights, captured["input"], captured["output"],
               {"module": "pretrainedmodels.bninception() module 3a, captured with hooks on a 64x64 input",
                "pretrainedmodels": getattr(pretrainedmodels, "__version__", "?")})


if __name__ == "__main__":
    torch.set_num_threads(2)
    write_state_dicts()
    inception_v3_block()
    bninception_block()
