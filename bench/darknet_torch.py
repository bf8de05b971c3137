"""Darknet cfg networks, .weights files, VOC data and VOC mAP in PyTorch/numpy.

Shared by bench/torch_train.py (the independent PyTorch reference trainer)
and tests/bench/torch_train_smoke.sh. Nothing here reads whittle's C code or
files other than what darknet defines: the cfg text, darknet's .weights
layout, a PASCAL VOC folder. Where whittle's documented behaviour must be
matched bit for bit (how `whittle eval` places an image into the network
input, how it decodes and suppresses boxes) this module says so; it follows
the definitions (darknet's [yolo] decoding, the VOC devkit), not the code.

Contents:
  parse_cfg(path)              -> list of sections (dicts; [net] first)
  Net(sections)                the network from PyTorch modules; .convs (cfg
                               order), .heads (one dict per [yolo])
  save_darknet_weights / load_darknet_weights
  load_image(path)             planar RGB float32 in [0, 1] (libjpeg via a
                               small ctypes shim, bench/jpeg_shim/jpeg_decode.c, which is
                               bit-identical to whittle's decoder; PIL else)
  VOCSet(root, split)          ids, image paths, objects, class names
  eval_xform / render          the evaluation placement (stretch or letterbox)
  detect(heads_out, ...)       darknet's [yolo] decoding, per-class greedy NMS
  voc_map(...)                 VOC07 11-point and VOC2010+ all-point mAP
"""
import ctypes
import hashlib
import os
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------- the cfg


def parse_cfg(path):
    sections = []
    with open(path) as f:
        for raw in f:
            line = raw.split('#')[0].split(';')[0].strip()
            if not line:
                continue
            if line.startswith('['):
                sections.append({'type': line[1:-1].strip()})
            elif '=' in line:
                if not sections:
                    raise SystemExit(f'{path}: a key before the first [section]')
                k, v = line.split('=', 1)
                sections[-1][k.strip()] = v.strip()
    if not sections or sections[0]['type'] not in ('net', 'network'):
        raise SystemExit(f'{path}: the first section must be [net]')
    return sections


class Mish(nn.Module):
    def forward(self, x):
        # PyTorch's fused op where it has one (the same function; bench/torch_compare.py times it)
        return F.mish(x) if hasattr(F, 'mish') else x * torch.tanh(F.softplus(x))


def act(name):
    table = {'leaky': lambda: nn.LeakyReLU(0.1), 'mish': Mish, 'relu': nn.ReLU, 'logistic': nn.Sigmoid,
             'swish': nn.SiLU, 'tanh': nn.Tanh, 'linear': nn.Identity}
    if name not in table:
        raise SystemExit(f'activation {name} is not supported')
    return table[name]()


class Net(nn.Module):
    """The darknet cfg as PyTorch modules.

    [convolutional] (batch_normalize, groups, pad/padding, activations),
    [maxpool] (darknet's padding = size-1 split -p/2 .. , outside never
    wins), [upsample] (nearest), [route] (layers, groups/group_id),
    [shortcut] (from, activation), [yolo] (the head's raw logits are
    returned; decoding is the loss's and detect()'s business).

    forward(x) returns the inputs of the [yolo] layers in cfg order, each
    (N, A*(5+C), H, W), channel a*(5+C)+k = entry k of anchor a (darknet).
    BatchNorm2d here is PyTorch's (eps inside the square root); the darknet
    export converts the running variance so that darknet's inference
    (x - mean) / (sqrt(var) + 1e-6) gives the same numbers.
    """

    def __init__(self, sections, bn_eps=1e-3, bn_momentum=0.03, size=None):
        super().__init__()
        net = sections[0]
        self.width, self.height = int(net.get('width', 416)), int(net.get('height', 416))
        if size:  # another input than the cfg's (bench/torch_compare.py times several)
            self.width = self.height = size
        self.flops = 0  # convolution FLOPs per image, 2 per multiply-add
        self.letter_box = int(net.get('letter_box', 0))
        c, h, w = int(net.get('channels', 3)), self.height, self.width
        self.layers = nn.ModuleList()
        self.kinds, self.convs, self.heads = [], [], []
        shapes = []
        for i, s in enumerate(sections[1:]):
            t = s['type']
            if t in ('convolutional', 'conv'):
                k, st, oc = int(s.get('size', 1)), int(s.get('stride', 1)), int(s['filters'])
                g = int(s.get('groups', 1))
                pad = k // 2 if int(s.get('pad', 0)) else int(s.get('padding', 0))
                bn = int(s.get('batch_normalize', 0))
                conv = nn.Conv2d(c, oc, k, st, pad, groups=g, bias=not bn)
                norm = nn.BatchNorm2d(oc, eps=bn_eps, momentum=bn_momentum) if bn else None
                mods = [conv] + ([norm] if bn else []) + [act(s.get('activation', 'logistic'))]
                self.layers.append(nn.Sequential(*mods))
                self.convs.append((conv, norm))
                h, w = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1
                self.flops += 2 * k * k * (c // g) * oc * h * w
                c = oc
                self.kinds.append(('seq',))
            elif t in ('maxpool', 'max'):
                st = int(s.get('stride', 1))
                k = int(s.get('size', st))
                p = int(s.get('padding', k - 1))
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
                anchors = [float(v) for v in s['anchors'].split(',')]
                anchors = [(anchors[2 * k], anchors[2 * k + 1]) for k in range(len(anchors) // 2)]
                num = int(s.get('num', len(anchors)))
                mask = [int(v) for v in s['mask'].split(',')] if 'mask' in s else list(range(num))
                classes = int(s.get('classes', 20))
                if c != len(mask) * (5 + classes):
                    raise SystemExit(f'[yolo] layer {i}: input has {c} channels, expected '
                                     f'{len(mask)} * ({classes} + 5)')
                self.heads.append({'layer': i, 'anchors': [anchors[m] for m in mask], 'mask': mask,
                                   'classes': classes, 'scale_x_y': float(s.get('scale_x_y', 1.0)),
                                   'h': h, 'w': w, 'conv': len(self.convs) - 1})
                self.layers.append(nn.Identity())
                self.kinds.append(('yolo',))
            elif t == 'dropout':
                self.layers.append(nn.Identity())  # inference: the identity; not used in training here
                self.kinds.append(('seq',))
            else:
                raise SystemExit(f'darknet_torch: [{t}] is not supported')
            shapes.append((c, h, w))
        if not self.heads:
            raise SystemExit('the cfg has no [yolo] layer')
        classes = {hd['classes'] for hd in self.heads}
        if len(classes) != 1:
            raise SystemExit(f'the [yolo] layers disagree on classes: {sorted(classes)}')
        self.classes = classes.pop()

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

    def n_params(self):
        """conv weights + BN scales and shifts, or conv biases: what `whittle info` counts."""
        return sum(p.numel() for p in self.parameters())


# -------------------------------------------------------- darknet .weights

DARKNET_BN_EPS = 1e-6  # darknet adds it to the standard deviation


def save_darknet_weights(net, path, seen=0):
    """darknet 0.2.5: int32 major, minor, revision, int64 seen; then per
    [convolutional] in cfg order: with batch_normalize, BN shift (beta), BN
    scale (gamma), rolling mean, rolling variance, conv weights (OIHW);
    without, conv bias then weights. float32 little-endian."""
    chunks = [struct.pack('<iiiq', 0, 2, 5, int(seen))]
    for conv, bn in net.convs:
        if bn is not None:
            var = bn.running_var.detach().double()
            # PyTorch: (x - m) / sqrt(var + eps); darknet: (x - m) / (sqrt(var') + 1e-6)
            var_dk = (torch.sqrt(var + bn.eps) - DARKNET_BN_EPS).clamp(min=0) ** 2
            parts = [bn.bias, bn.weight, bn.running_mean, var_dk]
        else:
            parts = [conv.bias]
        parts.append(conv.weight)
        for p in parts:
            chunks.append(p.detach().cpu().to(torch.float32).contiguous().numpy().astype('<f4').tobytes())
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def load_darknet_weights(net, path):
    """The inverse of save_darknet_weights; the BN layers get eps = 0 so that
    darknet's variance goes in exactly: var = (sqrt(var') + 1e-6)^2."""
    with open(path, 'rb') as f:
        buf = f.read()
    major, minor, _rev = struct.unpack_from('<iii', buf, 0)
    pos = 12 + (8 if major * 10 + minor >= 2 else 4)
    seen = struct.unpack_from('<q' if pos == 20 else '<i', buf, 12)[0]

    def take(t):
        nonlocal pos
        n = t.numel()
        if pos + 4 * n > len(buf):
            raise SystemExit(f'{path}: too short for the cfg')
        v = np.frombuffer(buf, dtype='<f4', count=n, offset=pos)
        pos += 4 * n
        return torch.from_numpy(v.astype(np.float32)).view_as(t)

    with torch.no_grad():
        for conv, bn in net.convs:
            if bn is not None:
                bn.bias.copy_(take(bn.bias))
                bn.weight.copy_(take(bn.weight))
                bn.running_mean.copy_(take(bn.running_mean))
                var_dk = take(bn.running_var).double()
                bn.running_var.copy_(((torch.sqrt(var_dk.clamp(min=0)) + DARKNET_BN_EPS) ** 2).float())
                bn.eps = 0.0
            else:
                conv.bias.copy_(take(conv.bias))
            conv.weight.copy_(take(conv.weight))
    if pos != len(buf):
        raise SystemExit(f'{path}: {len(buf) - pos} bytes more than the cfg needs')
    return seen


# ------------------------------------------------------------------ images

_jpeg = None
_jpeg_why = ''


def _jpeg_lib():
    """bench/jpeg_shim/jpeg_decode.c compiled once per source version into a cache folder."""
    global _jpeg, _jpeg_why
    if _jpeg is not None:
        return _jpeg or None
    src = os.path.join(HERE, 'jpeg_shim', 'jpeg_decode.c')
    try:
        with open(src, 'rb') as f:
            tag = hashlib.sha1(f.read()).hexdigest()[:12]
        cache = os.environ.get('WH_BENCH_CACHE') or os.path.join(tempfile.gettempdir(), f'whittle-bench-{os.getuid()}')
        os.makedirs(cache, exist_ok=True)
        so = os.path.join(cache, f'jpeg_decode-{tag}.so')
        if not os.path.exists(so):
            tmp = f'{so}.{os.getpid()}.tmp'
            cc = os.environ.get('CC', 'cc')
            subprocess.run([cc, '-O2', '-shared', '-fPIC', src, '-o', tmp, '-ljpeg'], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            os.replace(tmp, so)
        lib = ctypes.CDLL(so)
        lib.bench_jpeg_size.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        lib.bench_jpeg_decode.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.bench_jpeg_error.restype = ctypes.c_char_p
        _jpeg = lib
    except (OSError, subprocess.CalledProcessError) as e:
        _jpeg = False
        _jpeg_why = (e.stderr.decode(errors='replace').strip().splitlines() or [str(e)])[-1] \
            if isinstance(e, subprocess.CalledProcessError) and e.stderr else str(e)
    return _jpeg or None


def image_backend():
    if _jpeg_lib():
        return 'libjpeg (bench/jpeg_shim/jpeg_decode.c)'
    try:
        import PIL  # noqa: F401
        return 'PIL'
    except ImportError:
        return None


def load_image(path):
    """(3, H, W) float32 RGB in [0, 1]."""
    lib = _jpeg_lib()
    if lib and path.lower().endswith(('.jpg', '.jpeg')):
        w, h = ctypes.c_int(), ctypes.c_int()
        p = path.encode()
        if lib.bench_jpeg_size(p, ctypes.byref(w), ctypes.byref(h)) != 0:
            raise SystemExit(f'{path}: {lib.bench_jpeg_error().decode()}')
        out = np.empty((3, h.value, w.value), dtype=np.float32)
        if lib.bench_jpeg_decode(p, out.ctypes.data, w.value, h.value) != 0:
            raise SystemExit(f'{path}: {lib.bench_jpeg_error().decode()}')
        return out
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit(f'{path}: no image decoder: bench/jpeg_shim/jpeg_decode.c did not build ({_jpeg_why}; '
                         'needs cc and libjpeg-dev) and PIL is missing')
    with Image.open(path) as im:
        a = np.asarray(im.convert('RGB'), dtype=np.float32) / np.float32(255)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


# --------------------------------------------------------------------- VOC

VOC_CLASSES = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor']


class VOCSet:
    """A VOC root: classes.txt (else VOC's 20 names), ImageSets/Main/SPLIT.txt,
    Annotations/ID.xml, JPEGImages/ID.jpg. objects[i]: float64 array (n, 6) of
    xmin, ymin, xmax, ymax (VOC 1-based inclusive pixels), class, difficult."""

    def __init__(self, root, split):
        self.root = root
        cls_file = os.path.join(root, 'classes.txt')
        if os.path.exists(cls_file):
            with open(cls_file, encoding='utf-8-sig') as f:
                self.classes = [ln.strip() for ln in f if ln.strip()]
        else:
            self.classes = list(VOC_CLASSES)
        index = {c: k for k, c in enumerate(self.classes)}
        with open(os.path.join(root, 'ImageSets', 'Main', f'{split}.txt')) as f:
            self.ids = [ln.split()[0] for ln in f if ln.strip()]
        self.images, self.objects, self.sizes = [], [], []
        for i in self.ids:
            self.images.append(os.path.join(root, 'JPEGImages', f'{i}.jpg'))
            tree = ET.parse(os.path.join(root, 'Annotations', f'{i}.xml')).getroot()
            objs = []
            for o in tree.findall('object'):
                name = o.findtext('name').strip()
                if name not in index:
                    raise SystemExit(f'{root}: Annotations/{i}.xml: class "{name}" is not in the class list')
                bb = o.find('bndbox')
                d = o.findtext('difficult')
                objs.append([float(bb.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax')] +
                            [index[name], 1 if d and int(float(d)) else 0])
            self.objects.append(np.array(objs, dtype=np.float64).reshape(-1, 6))

    def __len__(self):
        return len(self.ids)


# -------------------------------------------------------------- placement


def eval_xform(iw, ih, W, H, letterbox):
    """How `whittle eval` places an image: stretched to W x H, or letterboxed
    (scaled by min(W/iw, H/ih) and centred); float32 like its xform."""
    sx, sy, ox, oy = W / iw, H / ih, 0.0, 0.0
    if letterbox:
        k = min(sx, sy)
        sx = sy = k
        ox, oy = (W - iw * k) / 2, (H - ih * k) / 2
    return {'sx': sx, 'sy': sy, 'dx': ox, 'dy': oy, 'flip': False, 'orig_w': iw, 'orig_h': ih}


def render(img, xf, W, H):
    """Bilinear sampling of img (3, h, w) through xf into (3, H, W): output
    pixel centre (u+0.5, v+0.5) comes from image point ((u+0.5-dx)/sx,
    (v+0.5-dy)/sy); grey 0.5 outside the image; flip mirrors the output.
    float32 arithmetic throughout, as whittle's loader."""
    f32 = np.float32
    _, h, w = img.shape
    sx, sy, dx, dy = f32(xf['sx']), f32(xf['sy']), f32(xf['dx']), f32(xf['dy'])
    u = np.arange(W, dtype=f32) + f32(0.5)
    if xf['flip']:
        u = f32(W) - u
    v = np.arange(H, dtype=f32) + f32(0.5)
    px = (u - dx) / sx - f32(0.5)
    py = (v - dy) / sy - f32(0.5)
    outx = (px < -0.5) | (px > f32(w) - f32(0.5))
    outy = (py < -0.5) | (py > f32(h) - f32(0.5))
    fx = np.clip(px, f32(0), f32(w - 1))
    fy = np.clip(py, f32(0), f32(h - 1))
    x0 = fx.astype(np.int64)
    y0 = fy.astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = (fx - x0.astype(f32))[None, None, :]
    ay = (fy - y0.astype(f32))[None, :, None]
    r0, r1 = img[:, y0, :], img[:, y1, :]
    top = r0[:, :, x0] * (f32(1) - ax) + r0[:, :, x1] * ax
    bot = r1[:, :, x0] * (f32(1) - ax) + r1[:, :, x1] * ax
    out = top * (f32(1) - ay) + bot * ay
    if outx.any() or outy.any():
        out[:, outy, :] = 0.5
        out[:, :, outx] = 0.5
    return out


# ------------------------------------------------------------- detections


def decode_head(raw, head, net_w, net_h):
    """darknet's [yolo] on one head's logits (N, A*(5+C), H, W): returns
    (N, A, H, W, 5+C) with x, y = (logistic*s - (s-1)/2 + col|row) / grid,
    w, h = exp(t) * anchor / net (fractions of the input), objectness and
    classes logistic."""
    n, _, gh, gw = raw.shape
    A, C, s = len(head['anchors']), head['classes'], head['scale_x_y']
    p = raw.view(n, A, 5 + C, gh, gw).permute(0, 1, 3, 4, 2)
    col = torch.arange(gw, dtype=raw.dtype).view(1, 1, 1, gw)
    row = torch.arange(gh, dtype=raw.dtype).view(1, 1, gh, 1)
    anc = torch.tensor(head['anchors'], dtype=raw.dtype)
    x = (torch.sigmoid(p[..., 0]) * s - 0.5 * (s - 1) + col) / gw
    y = (torch.sigmoid(p[..., 1]) * s - 0.5 * (s - 1) + row) / gh
    w = torch.exp(p[..., 2]) * anc[:, 0].view(1, A, 1, 1) / net_w
    h = torch.exp(p[..., 3]) * anc[:, 1].view(1, A, 1, 1) / net_h
    return torch.cat([torch.stack([x, y, w, h], -1), torch.sigmoid(p[..., 4:])], -1)


def nms_greedy(cls, score, box, thresh):
    """Per-class greedy NMS on one image: best score first (ties: the
    earlier row), plain IoU > thresh with a kept box of the same class
    suppresses. Returns the indices kept, in input order."""
    n = len(score)
    order = np.argsort(-score, kind='stable')
    gone = np.zeros(n, dtype=bool)
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    for p, i in enumerate(order):
        if gone[i]:
            continue
        rest = order[p + 1:]
        rest = rest[(~gone[rest]) & (cls[rest] == cls[i])]
        if not len(rest):
            continue
        iw = np.minimum(box[rest, 2], box[i, 2]) - np.maximum(box[rest, 0], box[i, 0])
        ih = np.minimum(box[rest, 3], box[i, 3]) - np.maximum(box[rest, 1], box[i, 1])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        uni = area[rest] + area[i] - inter
        iou = np.where(uni > 0, inter / np.where(uni > 0, uni, 1.0), 0.0)
        gone[rest[iou > thresh]] = True
    return np.nonzero(~gone)[0]


def detect(outs, heads, xfs, net_w, net_h, conf=0.005, nms=0.45):
    """The detections of a batch, as `whittle eval`/`detect` define them:
    decode every head (cfg order; cells row-major, anchors inner), keep
    objectness > conf, score = objectness * class probability > conf per
    class, boxes back through each image's xf to VOC pixels (x0+1, y0+1,
    x1, y1); per-class greedy NMS on those boxes as drawn, then each kept box
    clipped to the image (dropped when nothing is left), as darknet does.
    Returns one list per image of [cls, score, xmin, ymin, xmax, ymax]."""
    f32 = np.float32
    res = []
    dec = [decode_head(o.detach().float(), hd, net_w, net_h) for o, hd in zip(outs, heads)]
    for b, xf in enumerate(xfs):
        parts = []
        for d in dec:
            e = d[b].permute(1, 2, 0, 3).reshape(-1, d.shape[-1]).numpy()  # cell-major, anchor inner
            e = e[e[:, 4] > conf]
            if not len(e):
                continue
            x, y = e[:, 0] * f32(net_w), e[:, 1] * f32(net_h)
            w, h = e[:, 2] * f32(net_w), e[:, 3] * f32(net_h)
            x0, x1 = (x - w / f32(2)).astype(np.float64), (x + w / f32(2)).astype(np.float64)
            y0, y1 = (y - h / f32(2)).astype(np.float64), (y + h / f32(2)).astype(np.float64)
            if xf['flip']:
                x0, x1 = net_w - x1, net_w - x0
            sx, sy = float(f32(xf['sx'])), float(f32(xf['sy']))
            dx, dy = float(f32(xf['dx'])), float(f32(xf['dy']))
            x0, x1 = (x0 - dx) / sx, (x1 - dx) / sx
            y0, y1 = (y0 - dy) / sy, (y1 - dy) / sy
            sc = e[:, 4:5] * e[:, 5:]
            k, c = np.nonzero(sc > conf)  # row-major: box, then class
            boxes = np.stack([x0[k] + 1, y0[k] + 1, x1[k], y1[k]], 1).astype(f32).astype(np.float64)
            parts.append((c, sc[k, c].astype(np.float64), boxes))
        if not parts:
            res.append([])
            continue
        cls = np.concatenate([p[0] for p in parts])
        score = np.concatenate([p[1] for p in parts])
        box = np.concatenate([p[2] for p in parts])
        keep = nms_greedy(cls, score, box, nms)
        out = []
        for i in keep:  # clipped after NMS, in float32 as whittle stores them
            bx = [max(box[i][0], 1.0), max(box[i][1], 1.0), min(box[i][2], float(f32(xf['orig_w']))),
                  min(box[i][3], float(f32(xf['orig_h'])))]
            if bx[2] > bx[0] - 1.0 and bx[3] > bx[1] - 1.0:
                out.append([int(cls[i]), float(score[i])] + bx)
        res.append(out)
    return res


# -------------------------------------------------------------------- mAP


def _iou_voc(det, gts):
    """The VOC devkit's overlaps (+1 widths) of one box with rows of gts."""
    ixmin = np.maximum(gts[:, 0], det[0])
    iymin = np.maximum(gts[:, 1], det[1])
    ixmax = np.minimum(gts[:, 2], det[2])
    iymax = np.minimum(gts[:, 3], det[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inter = iw * ih
    uni = ((det[2] - det[0] + 1.0) * (det[3] - det[1] + 1.0) +
           (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0) - inter)
    return inter / uni


def voc_map(ds, dets_per_image, metric='voc07', iou_thresh=0.5):
    """mAP over the classes with ground truth (difficult objects neither
    hits nor misses), as the VOC devkit's voc_eval: detections ranked by
    score over the whole set, each matched to its best-overlapping object
    of the class in its image (IoU > 0.5). metric voc07: 11-point
    interpolated AP; voc: area under the monotone PR envelope."""
    C = len(ds.classes)
    aps = []
    per_class = []
    for c in range(C):
        gts = [o[o[:, 4] == c] for o in ds.objects]
        npos = int(sum((g[:, 5] == 0).sum() for g in gts))
        cand = [(d[1], i, k, d) for i, ds_i in enumerate(dets_per_image) for k, d in enumerate(ds_i) if d[0] == c]
        cand.sort(key=lambda t: -t[0])  # stable: ties keep the input order
        if npos == 0:
            per_class.append(float('nan'))
            continue
        used = [np.zeros(len(g), dtype=bool) for g in gts]
        tp, fp = np.zeros(len(cand)), np.zeros(len(cand))
        for r, (_, i, _, d) in enumerate(cand):
            g = gts[i]
            ov = _iou_voc(d[2:], g) if len(g) else np.zeros(0)
            if len(ov) and ov.max() > iou_thresh:
                j = int(ov.argmax())
                if g[j, 5]:
                    continue
                if not used[i][j]:
                    tp[r] = 1
                    used[i][j] = True
                else:
                    fp[r] = 1
            else:
                fp[r] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if metric == 'voc07':
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = prec[rec >= t].max() if np.any(rec >= t) else 0.0
                ap += p / 11.0
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for k in range(len(mpre) - 1, 0, -1):
                mpre[k - 1] = max(mpre[k - 1], mpre[k])
            idx = np.where(mrec[1:] != mrec[:-1])[0]
            ap = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
        aps.append(ap)
        per_class.append(float(ap))
    return (float(np.mean(aps)) if aps else float('nan')), per_class


def write_dets(path, ds, dets_per_image):
    """`whittle map --dets` format: image_id class_name score xmin ymin xmax ymax."""
    with open(path, 'w') as f:
        for i, dl in enumerate(dets_per_image):
            for d in dl:
                f.write(f'{ds.ids[i]} {ds.classes[d[0]]} {d[1]:.9g} {d[2]:.9g} {d[3]:.9g} {d[4]:.9g} {d[5]:.9g}\n')


def evaluate(net, ds, batch=8, conf=0.005, nms=0.45, letterbox=None):
    """Runs net (eval mode, no grad) over ds placed as `whittle eval` does;
    returns the detections per image."""
    lb = net.letter_box if letterbox is None else letterbox
    W, H = net.width, net.height
    was = net.training
    net.eval()
    res = []
    with torch.no_grad():
        for s in range(0, len(ds), batch):
            ims, xfs = [], []
            for i in range(s, min(s + batch, len(ds))):
                img = load_image(ds.images[i])
                xf = eval_xform(img.shape[2], img.shape[1], W, H, lb)
                ims.append(render(img, xf, W, H))
                xfs.append(xf)
            outs = net(torch.from_numpy(np.stack(ims)))
            res.extend(detect(outs, net.heads, xfs, W, H, conf, nms))
    net.train(was)
    return res
