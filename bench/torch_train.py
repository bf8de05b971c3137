#!/usr/bin/python3
"""An independent PyTorch reference trainer for darknet-cfg YOLO detectors.

    torch_train.py --cfg NET.cfg --data VOC_ROOT (--minutes M | --max-iters N) --out DIR
                   [--batch 16] [--threads 1] [--seed 1] [--no-ema] [--lr 1e-3] ...

Why it exists: the project compares whittle's trainer side by side with "a
plain strong PyTorch trainer" on the same network, the same data and the same
wall-clock budget, both scored by the same evaluator (`whittle eval`).

Why it is independent of whittle: it shares only the inputs, the darknet cfg
text and the VOC folder. The network is rebuilt here from the cfg with
PyTorch modules (bench/darknet_torch.py), the data are read with Python's XML
parser and libjpeg (a 100-line ctypes shim, bench/jpeg_shim/jpeg_decode.c) or PIL, and
the loss, the augmentation, the optimizer and the schedule are those of the
well-known PyTorch YOLO trainers (YOLOv5's recipe), not darknet's or
whittle's. Only the meaning of the exported numbers follows darknet, so that
whittle can load and score them: boxes are decoded as darknet's [yolo] layer
does, and the .weights file has darknet's layout.

The recipe, exactly:
  model      the cfg's layers; BatchNorm eps 1e-3, momentum 0.03; PyTorch's
             default conv init; each head's bias set as YOLOv5 does
             (objectness log(8 / cells of the grid), classes
             log(0.6 / (classes - 0.99999))).
  decoding   darknet [yolo]: x = (logistic(tx) * s - (s-1)/2 + col) / grid_w
             (s = scale_x_y), w = exp(tw) * anchor_w / net_w (tw clamped at 4
             in the loss against overflow), objectness and classes logistic.
  targets    every anchor of every head whose width and height ratios to the
             truth are all below --anchor-t 4 (YOLOv5), in the cell holding
             the truth's centre (and the two nearest neighbouring cells as
             YOLOv5 when the head's scale_x_y >= 2 makes them reachable); a
             truth no anchor fits gets its best-ratio anchor.
  loss       box: 1 - CIoU, mean over the assigned anchors of a head;
             objectness: BCE with target = CIoU (detached, clamped >= 0) at
             assigned anchors and 0 elsewhere, mean over the head, weighted
             per head by [4.0, 1.0, 0.4] ([4.0, 1.0] for two heads), largest
             grid first; classes: BCE against one-hot (no smoothing), mean
             over the assigned anchors, only when classes > 1. Gains as
             YOLOv5: box 0.05 * 3/nl, cls 0.5 * classes/80 * 3/nl, obj 1.0 *
             (net area / 640^2) * 3/nl; the sum times the batch size.
  optimizer  AdamW (lr 1e-3, betas 0.937, 0.999); weight decay 5e-4 on conv
             weights only (none on BN scales/shifts and biases); gradient
             norm clipped at 10.
  schedule   progress p = elapsed / budget with --minutes (wall clock; the
             budget counts the data loading), else iteration / --max-iters:
             lr = lr0 * warm * (lrf + (1 - lrf) * (1 + cos(pi p)) / 2), lrf
             0.01, warm rising linearly to 1 over the first 3 % of the
             budget and at least 15 iterations (each step's factor taken at
             the progress expected at its end).
  EMA        of all weights and BN statistics, decay 0.9999 * (1 - exp(-u /
             2000)) at update u (YOLOv5's ModelEMA); exported by default.
  augment    per image: random scale in [0.5, 1.5] and translation of
             +-10 % of the input around the cfg's placement (stretch, or
             letterbox when [net] letter_box=1), bilinear, grey 0.5 outside;
             horizontal flip 0.5; colour jitter as a 3x3 matrix: hue
             rotation +-0.015 of the circle, saturation and value gains 1 +-
             0.7 and 1 +- 0.4 (YOLOv5's hsv_h/s/v); boxes clipped, kept when
             > 2 px wide and tall and > 10 % of their unclipped area; VOC
             difficult objects skipped.
  data order a fresh random permutation of the training split each epoch.

Outputs in --out: torch.weights (darknet 0.2.5 .weights of the EMA weights,
or the raw ones with --no-ema; BN running variances converted to darknet's
sqrt(var) + 1e-6), result.json (iterations, images seen, seconds, the last
loss parts, threads, torch version, arguments, and unless --no-eval this
script's own VOC07/VOC mAP on the test split), train_log.jsonl (every
--log-every iterations) and, unless --no-eval, dets.txt (the test-split
detections in `whittle map --dets` format). --detect-image IMG also writes
detect.txt: that image's boxes in `whittle detect`'s format.
Not part of whittle; needs /usr/bin/python3 with torch and numpy.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import darknet_torch as dt  # noqa: E402

# ------------------------------------------------------------------ data


def color_matrix(dh, sg, vg):
    """RGB -> RGB: hue rotated by dh of the circle and chroma scaled by sg in
    YIQ, everything scaled by vg."""
    rgb2yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq2rgb = np.linalg.inv(rgb2yiq)
    c, s = math.cos(2 * math.pi * dh), math.sin(2 * math.pi * dh)
    rot = np.array([[1, 0, 0], [0, c * sg, -s * sg], [0, s * sg, c * sg]])
    return (vg * yiq2rgb @ rot @ rgb2yiq).astype(np.float32)


class TrainData:
    def __init__(self, ds, W, H, letterbox, a, rng):
        self.ds, self.W, self.H, self.lb, self.a, self.rng = ds, W, H, letterbox, a, rng
        self.perm, self.pos, self.epoch = None, 0, 0

    def sample(self, i):
        a, rng, W, H = self.a, self.rng, self.W, self.H
        img = dt.load_image(self.ds.images[i])
        _, ih, iw = img.shape
        kx, ky = W / iw, H / ih
        if self.lb:
            kx = ky = min(kx, ky)
        s = rng.uniform(1 - a.scale, 1 + a.scale)
        kx, ky = kx * s, ky * s
        dx = (W - iw * kx) / 2 + rng.uniform(-a.translate, a.translate) * W
        dy = (H - ih * ky) / 2 + rng.uniform(-a.translate, a.translate) * H
        flip = rng.uniform() < a.fliplr
        out = dt.render(img, {'sx': kx, 'sy': ky, 'dx': dx, 'dy': dy, 'flip': flip}, W, H)
        if a.hsv_h or a.hsv_s or a.hsv_v:
            r = rng.uniform(-1, 1, 3)
            m = color_matrix(r[0] * a.hsv_h, 1 + r[1] * a.hsv_s, 1 + r[2] * a.hsv_v)
            out = np.clip(np.tensordot(m, out, axes=1), 0, 1, dtype=np.float32)
        o = self.ds.objects[i]
        o = o[o[:, 5] == 0]  # difficult objects are not trained on
        x0, x1 = (o[:, 0] - 1) * kx + dx, o[:, 2] * kx + dx
        y0, y1 = (o[:, 1] - 1) * ky + dy, o[:, 3] * ky + dy
        if flip:
            x0, x1 = W - x1, W - x0
        area0 = (x1 - x0) * (y1 - y0)
        x0, x1 = np.clip(x0, 0, W), np.clip(x1, 0, W)
        y0, y1 = np.clip(y0, 0, H), np.clip(y1, 0, H)
        w, h = x1 - x0, y1 - y0
        keep = (w > 2) & (h > 2) & (w * h > 0.1 * area0)
        t = np.stack([o[:, 4], (x0 + x1) / 2 / W, (y0 + y1) / 2 / H, w / W, h / H], 1)[keep]
        return out, t

    def batch(self, n):
        ims, ts = [], []
        for b in range(n):
            if self.perm is None or self.pos >= len(self.perm):
                self.perm, self.pos = self.rng.permutation(len(self.ds)), 0
                self.epoch += 1
            im, t = self.sample(self.perm[self.pos])
            self.pos += 1
            ims.append(im)
            ts.append(np.concatenate([np.full((len(t), 1), b), t], 1))
        return torch.from_numpy(np.stack(ims)), torch.from_numpy(np.concatenate(ts).astype(np.float32))


# ------------------------------------------------------------------ loss


def ciou(p, t, eps=1e-7):
    """Complete IoU of (n, 4) xywh boxes."""
    p0, p1 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2
    t0, t1 = t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    wh = (torch.min(p1, t1) - torch.max(p0, t0)).clamp(0)
    inter = wh[:, 0] * wh[:, 1]
    union = p[:, 2] * p[:, 3] + t[:, 2] * t[:, 3] - inter + eps
    iou = inter / union
    cw = torch.max(p1, t1) - torch.min(p0, t0)
    c2 = (cw ** 2).sum(1) + eps
    rho2 = ((p[:, :2] - t[:, :2]) ** 2).sum(1)
    v = (4 / math.pi ** 2) * (torch.atan(t[:, 2] / (t[:, 3] + eps)) - torch.atan(p[:, 2] / (p[:, 3] + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloLoss:
    def __init__(self, net, a):
        self.heads, self.W, self.H, self.a = net.heads, net.width, net.height, a
        nl, nc = len(self.heads), net.classes
        by_size = sorted(range(nl), key=lambda i: -(self.heads[i]['h'] * self.heads[i]['w']))
        table = {1: [1.0], 2: [4.0, 1.0], 3: [4.0, 1.0, 0.4]}.get(nl, [4.0, 1.0, 0.25, 0.06, 0.02])
        self.balance = [0.0] * nl
        for rank, i in enumerate(by_size):
            self.balance[i] = table[min(rank, len(table) - 1)]
        self.g_box = a.box * 3 / nl
        self.g_cls = a.cls * nc / 80 * 3 / nl
        self.g_obj = a.obj * (self.W * self.H) / (640 * 640) * 3 / nl
        self.nc = nc

    def assign(self, targets):
        """Per head: (b, a, gj, gi, tbox xywh in input pixels, cls)."""
        n = targets.shape[0]
        W, H = self.W, self.H
        twh = targets[:, 4:6] * torch.tensor([W, H])
        ratios, fitted = [], torch.zeros(n, dtype=torch.bool)
        for hd in self.heads:
            anc = torch.tensor(hd['anchors'])
            r = twh[:, None, :] / anc[None]
            r = torch.max(r, 1 / r).max(2)[0]  # (n, A)
            ratios.append(r)
            fitted |= (r < self.a.anchor_t).any(1)
        best = None
        if n and not fitted.all():  # the best-ratio anchor over all heads
            allr = torch.cat(ratios, 1)
            best = allr.argmin(1)
        out, base = [], 0
        for i, hd in enumerate(self.heads):
            A, gw, gh = len(hd['anchors']), hd['w'], hd['h']
            m = ratios[i] < self.a.anchor_t
            if best is not None:
                forced = (~fitted) & (best >= base) & (best < base + A)
                m[forced.nonzero().flatten(), (best[forced] - base)] = True
            base += A
            ti, ai = m.nonzero(as_tuple=True)
            t = targets[ti]
            gxy = t[:, 2:4] * torch.tensor([gw, gh])
            cells = [(ti, ai, gxy)]
            if hd['scale_x_y'] >= 2.0:  # YOLOv5's two nearest neighbour cells, reachable only then
                f, size = gxy % 1, (gw, gh)
                for k, delta in ((0, -1), (1, -1), (0, 1), (1, 1)):
                    if delta < 0:
                        cond = (f[:, k] < 0.5) & (gxy[:, k] > 1)
                    else:
                        cond = (f[:, k] > 0.5) & (gxy[:, k] < size[k] - 1)
                    sel = cond.nonzero().flatten()
                    g = gxy[sel].clone()
                    g[:, k] += delta
                    cells.append((ti[sel], ai[sel], g))
            b_, a_, gi_, gj_, tb_, c_ = [], [], [], [], [], []
            for tt, aa, g in cells:
                tg = targets[tt]
                b_.append(tg[:, 0].long())
                a_.append(aa)
                gi_.append(g[:, 0].long().clamp(0, gw - 1))
                gj_.append(g[:, 1].long().clamp(0, gh - 1))
                tb_.append(tg[:, 2:6] * torch.tensor([W, H, W, H]))
                c_.append(tg[:, 1].long())
            out.append(tuple(torch.cat(v) for v in (b_, a_, gj_, gi_, tb_, c_)))
        return out

    def __call__(self, outs, targets):
        B = outs[0].shape[0]
        lbox, lobj, lcls = torch.zeros(()), torch.zeros(()), torch.zeros(())
        for i, (raw, hd, (b, a, gj, gi, tbox, tcls)) in enumerate(zip(outs, self.heads, self.assign(targets))):
            A, C, s = len(hd['anchors']), hd['classes'], hd['scale_x_y']
            gh, gw = raw.shape[2], raw.shape[3]
            p = raw.view(B, A, 5 + C, gh, gw).permute(0, 1, 3, 4, 2)
            tobj = torch.zeros(p.shape[:4])
            if b.numel():
                ps = p[b, a, gj, gi]
                anc = torch.tensor(hd['anchors'])[a]
                px = (torch.sigmoid(ps[:, 0]) * s - 0.5 * (s - 1) + gi) * (self.W / gw)
                py = (torch.sigmoid(ps[:, 1]) * s - 0.5 * (s - 1) + gj) * (self.H / gh)
                pw = torch.exp(ps[:, 2].clamp(max=4.0)) * anc[:, 0]
                ph = torch.exp(ps[:, 3].clamp(max=4.0)) * anc[:, 1]
                iou = ciou(torch.stack([px, py, pw, ph], 1), tbox)
                lbox = lbox + (1.0 - iou).mean()
                tobj[b, a, gj, gi] = iou.detach().clamp(0)
                if C > 1:
                    t = torch.zeros(len(b), C)
                    t[torch.arange(len(b)), tcls] = 1.0
                    lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], t)
            lobj = lobj + F.binary_cross_entropy_with_logits(p[..., 4], tobj) * self.balance[i]
        lbox, lobj, lcls = lbox * self.g_box, lobj * self.g_obj, lcls * self.g_cls
        return (lbox + lobj + lcls) * B, {'box': lbox.item(), 'obj': lobj.item(), 'cls': lcls.item()}


# ------------------------------------------------------------------ EMA


class EMA:
    def __init__(self, model, decay, tau):
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        with torch.no_grad():
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)


# ------------------------------------------------------------------ main


def init_head_biases(net):
    for hd in net.heads:
        conv, bn = net.convs[hd['conv']]
        if bn is not None or conv.bias is None:
            continue
        A, C = len(hd['anchors']), hd['classes']
        with torch.no_grad():
            b = conv.bias.view(A, 5 + C)
            b[:, 4] += math.log(8 / (hd['w'] * hd['h']))
            b[:, 5:] += math.log(0.6 / (C - 0.99999))


def param_groups(net, wd):
    decay, no_decay = [], []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            decay.append(m.weight)
            if m.bias is not None:
                no_decay.append(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            no_decay += [m.weight, m.bias]
    assert len(decay) + len(no_decay) == len(list(net.parameters()))
    return [{'params': decay, 'weight_decay': wd}, {'params': no_decay, 'weight_decay': 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cfg', required=True)
    ap.add_argument('--data', required=True, help='VOC root (classes.txt, ImageSets/Main, Annotations, JPEGImages)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--minutes', type=float, default=0, help='wall-clock training budget (drives the schedule)')
    ap.add_argument('--max-iters', type=int, default=0, help='iterations (the schedule\'s length without --minutes)')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--train-split', default='train')
    ap.add_argument('--test-split', default='test')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--lrf', type=float, default=0.01, help='final lr as a fraction of --lr')
    ap.add_argument('--weight-decay', type=float, default=5e-4)
    ap.add_argument('--warmup', type=float, default=0.03, help='warm-up, fraction of the budget')
    ap.add_argument('--warmup-iters', type=int, default=15, help='... and at least this many iterations')
    ap.add_argument('--clip', type=float, default=10.0, help='gradient norm clip (0: off)')
    ap.add_argument('--box', type=float, default=0.05)
    ap.add_argument('--obj', type=float, default=1.0)
    ap.add_argument('--cls', type=float, default=0.5)
    ap.add_argument('--anchor-t', type=float, default=4.0)
    ap.add_argument('--no-ema', action='store_true')
    ap.add_argument('--ema-decay', type=float, default=0.9999)
    ap.add_argument('--ema-tau', type=float, default=2000)
    ap.add_argument('--scale', type=float, default=0.5)
    ap.add_argument('--translate', type=float, default=0.1)
    ap.add_argument('--fliplr', type=float, default=0.5)
    ap.add_argument('--hsv-h', type=float, default=0.015)
    ap.add_argument('--hsv-s', type=float, default=0.7)
    ap.add_argument('--hsv-v', type=float, default=0.4)
    ap.add_argument('--log-every', type=int, default=10)
    ap.add_argument('--no-eval', action='store_true', help='skip this script\'s own test-split evaluation')
    ap.add_argument('--conf', type=float, default=0.005, help='evaluation: detection threshold')
    ap.add_argument('--nms', type=float, default=0.45, help='evaluation: per-class greedy NMS IoU')
    ap.add_argument('--detect-image', help='also write detect.txt: this image\'s boxes as `whittle detect` prints them')
    ap.add_argument('--detect-conf', type=float, default=0.25)
    a = ap.parse_args()
    if a.minutes <= 0 and a.max_iters <= 0:
        ap.error('give --minutes M or --max-iters N')
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)

    net = dt.Net(dt.parse_cfg(a.cfg))
    init_head_biases(net)
    ds = dt.VOCSet(a.data, a.train_split)
    if net.classes != len(ds.classes):
        raise SystemExit(f'{a.cfg} predicts {net.classes} classes but {a.data} has {len(ds.classes)}')
    if dt.image_backend() is None:
        raise SystemExit('no image decoder: needs cc and libjpeg-dev (bench/jpeg_shim/jpeg_decode.c), or PIL')
    data = TrainData(ds, net.width, net.height, net.letter_box, a, rng)
    crit = YoloLoss(net, a)
    opt = torch.optim.AdamW(param_groups(net, a.weight_decay), lr=a.lr, betas=(0.937, 0.999))
    ema = None if a.no_ema else EMA(net, a.ema_decay, a.ema_tau)
    budget = a.minutes * 60.0
    print(f'torch_train: {a.cfg} {net.width}x{net.height} letter_box={net.letter_box}, {net.n_params()} params, '
          f'{len(net.heads)} heads, {len(ds)} training images, batch {a.batch}, {a.threads} thread(s), '
          f'torch {torch.__version__}, images: {dt.image_backend()}, '
          + (f'{a.minutes:g} min' if budget else f'{a.max_iters} iterations'), flush=True)
    log = open(os.path.join(a.out, 'train_log.jsonl'), 'w')
    net.train()
    it, seen, parts, lossv = 0, 0, {}, float('nan')
    t0 = time.monotonic()
    t_load = 0.0
    while True:
        el = time.monotonic() - t0
        if (budget and el >= budget) or (a.max_iters and it >= a.max_iters):
            break
        p = max(el / budget if budget else 0.0, it / a.max_iters if a.max_iters else 0.0)
        # the warm-up factor of this step: progress expected at its end (the mean step so far)
        p_end = max((el + el / it) / budget if budget and it else 0.0, (it + 1) / a.max_iters if a.max_iters else 0.0)
        warm_p = 1.0 if a.warmup <= 0 or (budget and not it and not a.max_iters) else p_end / a.warmup
        warm = min(1.0, warm_p, (it + 1) / max(a.warmup_iters, 1))
        lr = a.lr * warm * (a.lrf + (1 - a.lrf) * (1 + math.cos(math.pi * min(p, 1.0))) / 2)
        for g in opt.param_groups:
            g['lr'] = lr
        tl = time.monotonic()
        imgs, targets = data.batch(a.batch)
        t_load += time.monotonic() - tl
        loss, parts = crit(net(imgs), targets)
        if not torch.isfinite(loss):
            raise SystemExit(f'torch_train: iteration {it + 1}: the loss is {loss.item()}')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), a.clip)
        opt.step()
        if ema:
            ema.update(net)
        it += 1
        seen += a.batch
        lossv = loss.item()
        if it % a.log_every == 0 or it == 1:
            el = time.monotonic() - t0
            row = {'iteration': it, 'images': seen, 'seconds': round(el, 2), 'lr': lr, 'loss': round(lossv, 5),
                   **{k: round(v, 5) for k, v in parts.items()}, 'img_per_s': round(seen / el, 3),
                   'load_s': round(t_load, 2), 'epoch': data.epoch}
            log.write(json.dumps(row) + '\n')
            log.flush()
            print(f'{it:6d}: loss {lossv:.4f} (box {parts["box"]:.4f} obj {parts["obj"]:.4f} cls {parts["cls"]:.4f}) '
                  f'lr {lr:.6f} {seen / el:.2f} img/s {el:.0f} s', flush=True)
    secs = time.monotonic() - t0
    model = net if ema is None else ema.ema
    model.eval()
    wpath = os.path.join(a.out, 'torch.weights')
    dt.save_darknet_weights(model, wpath, seen)
    res = {'trainer': 'torch_train.py', 'iterations': it, 'images_seen': seen, 'seconds': round(secs, 3),
           'img_per_s': round(seen / secs, 3) if secs > 0 else None, 'load_seconds': round(t_load, 3),
           'epochs': round(seen / len(ds), 3), 'final_loss': lossv, 'final_loss_parts': parts,
           'threads': torch.get_num_threads(), 'torch': torch.__version__, 'ema': ema is not None,
           'ema_updates': ema.updates if ema else 0, 'params': net.n_params(), 'weights': wpath,
           'image_backend': dt.image_backend(), 'args': vars(a)}
    print(f'done: {it} iterations, {seen} images in {secs:.1f} s ({res["img_per_s"]} img/s, '
          f'{t_load:.1f} s loading), last loss {lossv:.4f}; wrote {wpath}', flush=True)
    if a.detect_image:
        img = dt.load_image(a.detect_image)
        xf = dt.eval_xform(img.shape[2], img.shape[1], model.width, model.height, model.letter_box)
        with torch.no_grad():
            outs = model(torch.from_numpy(dt.render(img, xf, model.width, model.height)[None]))
        dets = sorted(dt.detect(outs, model.heads, [xf], model.width, model.height, a.detect_conf, a.nms)[0],
                      key=lambda d: -d[1])  # stable: as whittle's qsort only up to ties
        with open(os.path.join(a.out, 'detect.txt'), 'w') as f:
            for d in dets:
                f.write('class_%d %.6f %.1f %.1f %.1f %.1f\n' % tuple(d))
    if not a.no_eval:
        test = dt.VOCSet(a.data, a.test_split)
        te = time.monotonic()
        dets = dt.evaluate(model, test, conf=a.conf, nms=a.nms)
        dt.write_dets(os.path.join(a.out, 'dets.txt'), test, dets)
        res['torch_voc07'] = dt.voc_map(test, dets, 'voc07')[0]
        res['torch_voc'] = dt.voc_map(test, dets, 'voc')[0]
        res['eval_seconds'] = round(time.monotonic() - te, 2)
        print(f'own evaluation on {a.test_split} ({len(test)} images): VOC07 {res["torch_voc07"]:.4f}, '
              f'VOC {res["torch_voc"]:.4f}', flush=True)
    with open(os.path.join(a.out, 'result.json'), 'w') as f:
        json.dump(res, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
