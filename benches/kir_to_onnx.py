#!/usr/bin/env python3
"""Writes a kiln graph (a `kiln dump MODEL --format json` file) as an ONNX model
with seeded random weights, so that peers.py can time ONNX Runtime on the same
graph as kiln for models the conformance folder has no ONNX file of (resnet50,
inception-v3, ...). Timing does not depend on the weights' values.

    ./target/release/kiln dump resnet50 --format json -o /tmp/resnet50.json
    python3 benches/kir_to_onnx.py /tmp/resnet50.json /tmp/resnet50.onnx

Needs `pip install onnx numpy`. Ops: the forward ops of the zoo's inference graphs
(before passes); anything else is refused by name.
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def convert(doc):
    rng = np.random.default_rng(0)
    nodes, inits, inputs = [], [], []
    name = {}  # kiln node id -> ONNX value name

    def shape(n):
        return n["outputs"][0]["shape"]

    for n in doc["nodes"]:
        op, i = n["op"], n["id"]
        out = f"v{i}"
        name[i] = out
        ins = [name[a] for a, _ in n["operands"]]
        kind = op["op"]
        if kind == "input":
            inputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, shape(n)))
        elif kind == "param":
            s = shape(n)
            if op["name"].endswith("running_var"):
                data = rng.uniform(0.5, 1.5, s)
            else:
                fan_in = int(np.prod(s[1:])) if len(s) > 1 else 1
                data = rng.standard_normal(s) / np.sqrt(fan_in)
            inits.append(numpy_helper.from_array(data.astype(np.float32), out))
        elif kind == "conv2d":
            if op["epilogue"]["residual"] or op["epilogue"]["relu"]:
                sys.exit("fused conv epilogues have no ONNX op: export the graph before passes")
            p = op["pad"]
            nodes.append(helper.make_node("Conv", ins, [out], kernel_shape=op["kernel"], strides=op["stride"],
                                          pads=[p[0], p[1], p[2], p[3]], dilations=op["dilation"], group=op["groups"]))
        elif kind == "batch_norm":
            nodes.append(helper.make_node("BatchNormalization", ins, [out], epsilon=op["eps"]))
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", ins, [out]))
        elif kind == "add":
            nodes.append(helper.make_node("Add", ins, [out]))
        elif kind in ("max_pool", "avg_pool"):
            p = op["pad"]
            kw = dict(kernel_shape=op["kernel"], strides=op["stride"], pads=[p[0], p[1], p[2], p[3]],
                      ceil_mode=int(op["ceil_mode"]))
            if kind == "avg_pool":
                kw["count_include_pad"] = int(op["count_include_pad"])
            nodes.append(helper.make_node("MaxPool" if kind == "max_pool" else "AveragePool", ins, [out], **kw))
        elif kind == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [out]))
        elif kind == "flatten":
            nodes.append(helper.make_node("Flatten", ins, [out], axis=op["axis"]))
        elif kind == "dense":
            nodes.append(helper.make_node("Gemm", ins, [out], transB=1))
        elif kind == "concat":
            nodes.append(helper.make_node("Concat", ins, [out], axis=op["axis"]))
        elif kind == "dropout":
            nodes.append(helper.make_node("Identity", ins, [out]))
        elif kind == "lrn":
            nodes.append(helper.make_node("LRN", ins, [out], size=op["size"], alpha=op["alpha"], beta=op["beta"],
                                          bias=op["k"]))
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", ins, [out], axis=op["axis"]))
        else:
            sys.exit(f"node {i}: op {kind} has no ONNX export here")
    by_id = {n["id"]: n for n in doc["nodes"]}
    outputs = [helper.make_tensor_value_info(name[a], TensorProto.FLOAT, shape(by_id[a])) for a, _ in doc["outputs"]]
    graph = helper.make_graph(nodes, doc.get("name", "kiln"), inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    onnx.save(convert(doc), sys.argv[2])


if __name__ == "__main__":
    main()
