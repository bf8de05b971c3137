#!/usr/bin/python3
"""The same network in PyTorch, timed the way `whittle bench net` times it.

    torch_compare.py CFG --size N --batch B --mode infer|train [--runs R] [--threads T]

Builds the darknet cfg (convolutional with or without batch norm, maxpool,
upsample, route with groups, shortcut, yolo as a pass-through) from PyTorch
modules (Conv2d, BatchNorm2d, the activations, MaxPool2d, nearest
upsampling, cat, add), random weights, random input. infer: torch.no_grad()
forward passes in eval mode; train: forward, a sum-of-squares loss on the
[yolo] inputs (the YOLO loss itself is a small part of a step), backward,
SGD step with momentum. Two warm-up runs, then the median of --runs. Prints
one JSON object with the keys of `whittle bench net --json`. Run by
scripts/bench-suite.sh when /usr/bin/python3 has torch.
"""
import argparse
import json
import os
import sys
import statistics
import time

import torch


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from darknet_torch import Net, parse_cfg  # noqa: E402  (the cfg -> PyTorch builder, shared)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('cfg')
    ap.add_argument('--size', type=int, required=True)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--mode', choices=['infer', 'train'], default='infer')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = Net(parse_cfg(a.cfg), size=a.size)
    x = torch.rand(a.batch, 3, a.size, a.size)
    times = []
    if a.mode == 'infer':
        net.eval()
        with torch.no_grad():
            for r in range(2 + a.runs):
                t0 = time.perf_counter()
                net(x)
                if r >= 2:
                    times.append(time.perf_counter() - t0)
    else:
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        for r in range(2 + a.runs):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = sum((h * h).mean() for h in net(x))
            loss.backward()
            opt.step()
            if r >= 2:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    mult = 3 if a.mode == 'train' else 1
    print(json.dumps({'bench': 'torch', 'net': a.cfg, 'mode': a.mode, 'size': a.size, 'batch': a.batch,
                      'threads': torch.get_num_threads(), 'torch': torch.__version__, 'runs': a.runs,
                      'median_s': round(med, 5), 'img_per_s': round(a.batch / med, 3),
                      'conv_gflop_per_img': round(net.flops / 1e9, 4),
                      'gflop_per_s': round(mult * net.flops * a.batch / med / 1e9, 2)}))


if __name__ == '__main__':
    main()
