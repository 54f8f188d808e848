#!/usr/bin/env python3
"""kiln against its peers, on this machine, in one run.

For each model it times ONNX Runtime (and PyTorch eager, if installed) on the
ONNX files and weights in ../shared/conformance (or --conformance DIR), then
runs `kiln bench MODEL --json` on the same model, and prints kiln's median
latency over theirs. Needs: `pip install onnxruntime numpy` (torch optional);
kiln itself is built with `cargo build --release`.

    python3 benches/peers.py --threads 2 --models resnet18,googlenet
    python3 benches/peers.py --models resnet50 --onnx /tmp/conf/resnet50/model.onnx

Figures move 10-40% between runs on shared machines: compare within one run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ZOO = {  # conformance folder / torchvision name -> kiln zoo name
    "resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
    "resnet152": "resnet152", "wide_resnet50_2": "wide-resnet50-2", "googlenet": "googlenet",
    "inception_v3": "inception-v3", "bninception": "bn-inception",
}


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times), max(times)


def time_ort(path, threads, warmup, iters):
    import numpy as np
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return median_ms(lambda: sess.run(None, {inp.name: x}), warmup, iters), f"onnxruntime {ort.__version__}"


def time_torch(name, threads, size, warmup, iters):
    try:
        import torch
        import torchvision
    except ImportError:
        return None, None
    torch.set_num_threads(threads)
    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    if name not in dir(torchvision.models):
        return None, None
    model = getattr(torchvision.models, name)(**kwargs).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        return median_ms(lambda: model(x), warmup, iters), f"torch {torch.__version__}"


def time_kiln(kiln, zoo_name, threads, passes, iters):
    cmd = [kiln, "bench", zoo_name, "--threads", str(threads), "--iterations", str(iters), "--json"]
    if passes:
        cmd += ["--passes", passes]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conformance", default=os.path.join(root, "..", "shared", "conformance"))
    ap.add_argument("--models", default="resnet18,googlenet")
    ap.add_argument("--onnx", help="ONNX file for a single model not in the conformance folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate kiln and the peers this many times; the report takes the median round")
    ap.add_argument("--passes", default="fold-bn,fuse-residual,dce")
    ap.add_argument("--kiln", default=os.path.join(root, "target", "release", "kiln"))
    args = ap.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    rows = []
    for name in args.models.split(","):
        onnx = args.onnx or os.path.join(args.conformance, name, "model.onnx")
        size = 299 if name == "inception_v3" else 224
        # Shared machines drift by tens of percent within minutes: alternate the
        # systems and compare each round's pair, so drift hits both alike.
        kiln_runs, ort_runs, torch_runs, ver, torch_ver = [], [], [], None, None
        for _ in range(args.rounds):
            kiln_runs.append(time_kiln(args.kiln, ZOO.get(name, name), args.threads, args.passes, args.iterations))
            if os.path.exists(onnx):
                (ort_ms, _, _), ver = time_ort(onnx, args.threads, args.warmup, args.iterations)
                ort_runs.append(ort_ms)
            (torch_t, torch_ver) = time_torch(name, args.threads, size, args.warmup, args.iterations)
            if torch_t:
                torch_runs.append(torch_t[0])
        kiln_ms = [k["median_ms"] for k in kiln_runs]
        best = kiln_runs[kiln_ms.index(statistics.median_low(kiln_ms))]
        row = {"model": name, "kiln_ms": statistics.median(kiln_ms), "kiln_gflops": best["gflops"],
               "kiln_peak_share": best["peak_share"], "kiln_rounds": kiln_ms}
        if ort_runs:
            row["ort_ms"], row["ort"], row["ort_rounds"] = statistics.median(ort_runs), ver, ort_runs
            row["kiln_over_ort_rounds"] = [k / o for k, o in zip(kiln_ms, ort_runs)]
        if torch_runs:
            row["torch_ms"], row["torch"] = statistics.median(torch_runs), torch_ver
        rows.append(row)
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {args.threads} threads, batch 1: median over {args.rounds} alternating rounds of the median of {args.iterations} runs")
    print(f"{'model':<16} {'kiln ms':>9} {'GFLOP/s':>8} {'peak':>6} {'ORT ms':>8} {'kiln/ORT':>9} {'torch ms':>9} {'kiln/torch':>10}")
    for r in rows:
        ort_ms, torch_ms = r.get("ort_ms"), r.get("torch_ms")
        print(f"{r['model']:<16} {r['kiln_ms']:>9.2f} {r['kiln_gflops']:>8.1f} {100 * r['kiln_peak_share']:>5.0f}% "
              f"{ort_ms or float('nan'):>8.2f} {(r['kiln_ms'] / ort_ms) if ort_ms else float('nan'):>9.2f} "
              f"{torch_ms or float('nan'):>9.2f} {(r['kiln_ms'] / torch_ms) if torch_ms else float('nan'):>10.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
