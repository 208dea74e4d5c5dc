"""PyTorch's side of bench/conv_shapes.sh: each convolution shape pass by pass, and MKL's sgemm on its matrix product.

Reads the shapes `cargo run --release --example bench_conv_shapes -- --list` prints (one per line on stdin) and
prints lines in that example's format, `model label pass ms gflop_per_s`, medians over rounds:
- forward: torch.nn.functional.conv2d (oneDNN on CPU);
- input_grad and weight_grad: aten.convolution_backward with only that output requested, as autograd calls it
  for a layer whose input (or weight) alone needs a gradient;
- gemm_1t: torch.mm of the im2col forward's unit product (C_out x cols x K) on one thread, repeated to about 2e8
  multiply-adds a round as the example does.

Usage: target/release/examples/bench_conv_shapes --list | python3 bench/torch_conv_shapes.py [--threads 2] [--rounds 7]
"""

import argparse
import statistics
import sys
import time

import torch


def median_ms(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds")
    for line in sys.stdin:
        if not line.strip():
            continue
        f = line.split()
        model, label = f[0], f[1]
        n, c, h, w, c_out, k, stride, _count, input_grad, m, cols, kk = map(int, f[2:])
        pad = k // 2
        torch.set_num_threads(args.threads)
        x = torch.randn(n, c, h, w)
        wt = torch.randn(c_out, c, k, k) * 0.1
        y = torch.nn.functional.conv2d(x, wt, stride=stride, padding=pad)
        dy = torch.randn_like(y)
        macs = n * c_out * c * k * k * y.shape[2] * y.shape[3]

        def gflops(ms, macs=macs):
            return 2 * macs / ms / 1e6

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(
                dy, x, wt, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask
            )

        with torch.no_grad():
            passes = [("forward", lambda: torch.nn.functional.conv2d(x, wt, stride=stride, padding=pad))]
            if input_grad:
                passes.append(("input_grad", backward([True, False, False])))
            passes.append(("weight_grad", backward([False, True, False])))
            for name, fn in passes:
                ms = median_ms(fn, args.rounds)
                print(f"{model} {label} {name} {ms:.3f} {gflops(ms):.1f}", flush=True)
            torch.set_num_threads(1)
            a, b = torch.randn(m, kk), torch.randn(kk, cols)
            # As the example: repeat the product to about 2e8 multiply-adds a round.
            reps = max(1, 200_000_000 // (m * cols * kk))
            out = torch.empty(m, cols)

            def mm():
                for _ in range(reps):
                    torch.mm(a, b, out=out)

            ms = median_ms(mm, args.rounds) / reps
            print(f"{model} {label} gemm_1t {ms:.3f} {gflops(ms, m * cols * kk):.1f}", flush=True)


if __name__ == "__main__":
    main()
