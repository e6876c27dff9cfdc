#!/usr/bin/env python3
"""Benchmark: each architecture's FLOPs against this CPU's measured peak, and how close it runs.

Peak: float32 matrix multiplication (NumPy/BLAS, all cores), the best a CPU does on dense math.
FLOPs: counted by TensorFlow's profiler on the model graph at batch 1. Achieved: FLOPs / latency
of the same model compiled with tf.function and with ONNX Runtime (all cores). Writes
benchmarks/results/roofline.{json,md}.

Usage: python benchmarks/roofline.py [--size 224]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.common import median, timed, write_results
from ferlite.base.architectures import ARCHITECTURES


def peak_gflops(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Dense float32 GEMM throughput by NumPy's BLAS and by TensorFlow's oneDNN; the best is the peak."""
    import tensorflow as tf

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    out = {}
    for name, fn in (("numpy", lambda: a @ b), ("tensorflow", lambda: matmul(ta, tb).numpy())):
        fn()
        out[name] = 2 * n**3 / (min(timed(fn, repeats)) / 1000) / 1e9
    return out


def model_flops(model, size: int) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    opts = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation()) \
        .with_empty_output().build()
    info = model_analyzer.profile(graph=frozen.graph, options=opts)
    return int(info.total_float_ops)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from ferlite.training import models

    gemm = peak_gflops()
    peak = max(gemm.values())
    print(f"CPU peak (float32 GEMM, all cores): {peak:.1f} GFLOP/s ({gemm})", flush=True)
    rows = {}
    for arch in ARCHITECTURES:
        model = models.build_model(arch, args.size, "none")
        flops = model_flops(model, args.size)
        fn = tf.function(lambda x, m=model: m(x, training=False))
        spec = (tf.TensorSpec((None, args.size, args.size, 3), tf.float32, name="image"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        row = {"gflops_per_image": flops / 1e9}
        for batch in (1, 8):
            x = np.random.default_rng(2).random((batch, args.size, args.size, 3), dtype=np.float32)
            fn(x)
            session.run(None, {"image": x})
            tf_ms = median(timed(lambda x=x, f=fn: f(x).numpy(), 10))
            ort_ms = median(timed(lambda x=x, s=session: s.run(None, {"image": x}), 10))
            for name, ms in (("tensorflow", tf_ms), ("onnxruntime", ort_ms)):
                achieved = flops * batch / (ms / 1000) / 1e9
                row[f"{name}_b{batch}"] = {"ms_per_batch": ms, "ms_per_image": ms / batch,
                                           "achieved_gflops": achieved, "fraction_of_peak": achieved / peak}
        rows[arch] = row
        best = max((v for k, v in row.items() if isinstance(v, dict)), key=lambda v: v["achieved_gflops"])
        print(f"{arch:<20} {row['gflops_per_image']:.3f} GFLOP/image; best {best['ms_per_image']:.2f} ms/image = "
              f"{best['achieved_gflops']:.1f} GFLOP/s ({best['fraction_of_peak']:.0%} of peak); "
              f"floor at peak {row['gflops_per_image'] / peak * 1000:.2f} ms/image", flush=True)
    lines = ["# Physical limit: FLOPs vs this CPU's peak", "",
             f"Peak measured in the same run: the faster of float32 GEMM (2048x2048) by NumPy/BLAS "
             f"({gemm['numpy']:.1f} GFLOP/s) and by TensorFlow/oneDNN ({gemm['tensorflow']:.1f}) = {peak:.1f} "
             "GFLOP/s on all cores. "
             f"Models at {args.size}×{args.size}, batch 1 and 8, median of 10.", "",
             "| architecture | GFLOP/image | floor at peak (ms/img) | TF b1 ms/img | TF b8 ms/img | ORT b1 ms/img "
             "| ORT b8 ms/img | best fraction of peak |", "|---|---|---|---|---|---|---|---|"]
    for arch, r in rows.items():
        best = max(v["fraction_of_peak"] for v in r.values() if isinstance(v, dict))
        lines.append(f"| {arch} | {r['gflops_per_image']:.3f} | {r['gflops_per_image'] / peak * 1000:.2f} | "
                     f"{r['tensorflow_b1']['ms_per_image']:.2f} | {r['tensorflow_b8']['ms_per_image']:.2f} | "
                     f"{r['onnxruntime_b1']['ms_per_image']:.2f} | {r['onnxruntime_b8']['ms_per_image']:.2f} | "
                     f"{best:.0%} |")
    fractions = {a: max(v["fraction_of_peak"] for v in r.values() if isinstance(v, dict)) for a, r in rows.items()}
    lines += ["", f"The best runtime reaches {min(fractions.values()):.0%}-{max(fractions.values()):.0%} of the "
              "measured GEMM peak. Depthwise convolutions and squeeze-excite blocks do little arithmetic per byte "
              "moved, so memory traffic rather than FLOPs bounds these networks on a CPU.", ""]
    md = "\n".join(lines)
    write_results("roofline", {"peak_gflops": peak, "gemm_gflops": gemm, "size": args.size, "models": rows,
                               "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
