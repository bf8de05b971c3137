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
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_cfg(path):
    sections = []
    for raw in open(path):
        line = raw.split('#')[0].strip()
        if not line:
            continue
        if line.startswith('['):
            sections.append({'type': line[1:-1].strip()})
        elif '=' in line:
            k, v = line.split('=', 1)
            sections[-1][k.strip()] = v.strip()
    return sections


class Mish(nn.Module):
    def forward(self, x):
        return F.mish(x)


def act(name):
    return {'leaky': nn.LeakyReLU(0.1), 'mish': Mish(), 'relu': nn.ReLU(), 'logistic': nn.Sigmoid(),
            'swish': nn.SiLU(), 'tanh': nn.Tanh(), 'linear': nn.Identity()}[name]


class Net(nn.Module):
    def __init__(self, sections, size):
        super().__init__()
        net = sections[0]
        c = int(net.get('channels', 3))
        h = w = size
        self.layers = nn.ModuleList()
        self.kinds = []
        shapes = []  # (c, h, w) per layer
        self.flops = 0
        for i, s in enumerate(sections[1:]):
            t = s['type']
            if t == 'convolutional':
                k, st, oc = int(s.get('size', 1)), int(s.get('stride', 1)), int(s['filters'])
                g = int(s.get('groups', 1))
                pad = k // 2 if int(s.get('pad', 0)) else int(s.get('padding', 0))
                bn = int(s.get('batch_normalize', 0))
                conv = nn.Conv2d(c, oc, k, st, pad, groups=g, bias=not bn)
                mods = [conv] + ([nn.BatchNorm2d(oc)] if bn else []) + [act(s.get('activation', 'logistic'))]
                self.layers.append(nn.Sequential(*mods))
                h, w = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1
                self.flops += 2 * k * k * (c // g) * oc * h * w
                c = oc
                self.kinds.append(('seq',))
            elif t == 'maxpool':
                k, st = int(s.get('size', s.get('stride', 1))), int(s.get('stride', 1))
                p = int(s.get('padding', k - 1))
                # darknet: out = (in + p - k) / st + 1, the window starting at -p/2
                self.layers.append(nn.Identity())
                self.kinds.append(('pool', k, st, p))
                h, w = (h + p - k) // st + 1, (w + p - k) // st + 1
            elif t == 'upsample':
                st = int(s.get('stride', 2))
                self.layers.append(nn.Upsample(scale_factor=st, mode='nearest'))
                self.kinds.append(('seq',))
                h, w = h * st, w * st
            elif t == 'route':
                idx = [int(v) for v in s['layers'].split(',')]
                idx = [j if j >= 0 else i + j for j in idx]
                groups, gid = int(s.get('groups', 1)), int(s.get('group_id', 0))
                self.layers.append(nn.Identity())
                self.kinds.append(('route', idx, groups, gid))
                c = sum(shapes[j][0] // groups for j in idx)
                h, w = shapes[idx[0]][1], shapes[idx[0]][2]
            elif t == 'shortcut':
                j = int(s['from'])
                j = j if j >= 0 else i + j
                self.layers.append(act(s.get('activation', 'linear')))
                self.kinds.append(('short', j))
            elif t == 'yolo':
                self.layers.append(nn.Identity())
                self.kinds.append(('yolo',))
            else:
                raise SystemExit(f'torch_compare: [{t}] is not supported')
            shapes.append((c, h, w))

    def forward(self, x):
        outs, heads = [], []
        for m, k in zip(self.layers, self.kinds):
            if k[0] == 'seq':
                x = m(x)
            elif k[0] == 'pool':
                _, size, st, p = k
                lo, hi = p // 2, p - p // 2
                x = F.max_pool2d(F.pad(x, (lo, hi, lo, hi), value=float('-inf')), size, st)
            elif k[0] == 'route':
                _, idx, groups, gid = k
                parts = []
                for j in idx:
                    t = outs[j]
                    n = t.shape[1] // groups
                    parts.append(t[:, gid * n:(gid + 1) * n])
                x = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
            elif k[0] == 'short':
                x = m(x + outs[k[1]])
            elif k[0] == 'yolo':
                heads.append(x)
            outs.append(x)
        return heads


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
    net = Net(parse_cfg(a.cfg), a.size)
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
