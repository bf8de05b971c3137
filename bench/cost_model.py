#!/usr/bin/env python3
"""The cost model of data-parallel training (README, "Training on a cluster").

Per iteration every rank sends and receives, in a ring allreduce of the
gradients (G bytes, float32), 2 (N-1)/N * G bytes, in k buckets; each
bucket pays the ring's 2 (N-1) message latencies. So

    t_comm(N) = 2 (N-1)/N * G / bw  +  k * 2 (N-1) * alpha  +  t_bn
    t_bn      = L * 2 * 2 log2(N) * alpha   (synchronised batch norm: two small
                allreduces per BN layer and mini-batch, L layers, a tree each)
    t_step(N) = t_compute + max(0, t_comm - overlap * t_backward)

with t_compute the time of one rank's share of the batch, t_backward about
2/3 of it, and overlap in [0, 1] the share of the backward the allreduce can
hide behind (whittle starts each bucket as the backward passes its layers
and drives it between layers; 0 is the safe assumption, Open MPI progressing
only inside MPI calls). With b images per rank, N ranks process N b images
per t_step: images/s = N b / t_step; efficiency = t_compute / t_step.

    bench/cost_model.py [--cores-per-node C] [--batch-per-rank B] [--alpha-us A] [--overlap F]

The defaults: a node is 32 cores of this machine's kind, i.e. 16x the
2-core training figures of the suite here (bench/results/20261126-043125-vm.jsonl,
416, batch 8: yolov4-tiny 4.27 img/s, yolov4 0.45 img/s), which is
optimistic (scaling within a node is not linear); alpha 20 us (TCP over
Ethernet; InfiniBand is nearer 2 us).
"""
import argparse
import math

MODELS = {
    # name: (parameters = gradient floats, training img/s of a 2-core node measured here at 416,
    #        convolutions with batch norm)
    "yolov4-tiny": (5918006, 4.27, 19),
    "yolov4": (64363101, 0.45, 107),
}
BUCKET = 4 << 20  # bytes (framework/train/dist.h default)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores-per-node", type=int, default=32)
    ap.add_argument("--batch-per-rank", type=int, default=8)
    ap.add_argument("--alpha-us", type=float, default=20.0, help="per-message latency, microseconds")
    ap.add_argument("--overlap", type=float, default=0.0)
    ap.add_argument("--no-sync-bn", action="store_true")
    a = ap.parse_args()
    print("| model | gradient MB | bytes sent per rank per step | link | N | t_compute ms | t_comm ms "
          "| efficiency | img/s (job) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (params, ips2, n_bn) in MODELS.items():
        g = params * 4.0
        node_ips = ips2 * a.cores_per_node / 2
        tc = a.batch_per_rank / node_ips
        k = max(1, round(g / max(BUCKET, g / 16)))  # framework/train/dist.c: at most about 16 buckets
        for gbit in (10, 100):
            bw = gbit * 1e9 / 8 * 0.9  # 90 % of the line rate
            for n in (8, 16, 32, 64):
                sent = 2 * (n - 1) / n * g
                tbn = 0 if a.no_sync_bn else n_bn * 2 * 2 * math.log2(n) * a.alpha_us * 1e-6
                tcomm = sent / bw + k * 2 * (n - 1) * a.alpha_us * 1e-6 + tbn
                exposed = max(0.0, tcomm - a.overlap * tc * 2 / 3)
                step = tc + exposed
                print("| %s | %.1f | %.1f MB | %d Gbit/s | %d | %.0f | %.0f | %.0f %% | %.0f |" % (
                    name, g / 1e6, sent / 1e6, gbit, n, tc * 1e3, tcomm * 1e3, 100 * tc / step,
                    n * a.batch_per_rank / step))


if __name__ == "__main__":
    main()
