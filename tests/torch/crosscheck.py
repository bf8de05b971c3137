#!/usr/bin/python3
"""Whole-network cross-check of whittle against PyTorch (llm.c's test habit).

    crosscheck.py DUMP.bin

DUMP.bin comes from tests/tools/netdump.c (its header comment describes the
format and what is in it). This script rebuilds the network from the cfg text
in the dump with its own small cfg parser and darknet's layer definitions
(AlexeyAB/darknet, CPU path), in float64, and compares in two ways.

Free-running (the reference computes everything from the input on):
  out     out.i, the training forward (batch statistics) of every layer
  inf     inf.out.i, the inference forward (rolling statistics as they were
          before the training forward) of every layer
  Rounding differences grow with depth in any float32 implementation of a
  deep batch-norm net at init; the tolerance is therefore TOL_OUT or
  DRIFT_FACTOR x the drift of this same reference run in float32, the larger.

Anchored (each layer reads the ENGINE's values of its inputs, so the only
error is that layer's own; backward is the exact float64 chain rule taken at
the engine's activations, so leaky/maxpool decisions cannot flip between the
two, which a free-running gradient comparison suffers from):
  step     out.i from the engine's inputs
  infstep  inf.out.i from the engine's inputs
  rolled   rolled.i.*: the rolling statistics after the training forward
  dout     dout.back.i: d loss / d out.i, loss = sum over [yolo] layers of
           sum(out * dout), by autograd
  grad     grad.i.*: d loss / d param (biases, scales, weights), and dinput

The error of a tensor is max|engine - reference| / max|reference|. The table
shows the two nearest to their tolerance of each kind, then every failure.
The last line is "crosscheck: N passed, M failed"; exit status 1 on a failure.

Darknet definitions used (none of them read from whittle's C code):
  convolutional  pad=1 -> padding size/2 (else 'padding'), groups, OIHW
                 weights; batch_normalize: training uses the batch mean and
                 the UNBIASED batch variance (M-1, M = N*H*W),
                 xhat = (x - mean) / (sqrt(var) + 1e-6), y = scales*xhat +
                 biases; rolling = 0.99 rolling + 0.01 batch (unbiased var);
                 inference uses the rolling statistics the same way.
                 Without BN: y = conv + biases. Default activation logistic.
  maxpool        stride (1), size (stride), padding (size-1); out =
                 (in + padding - size)/stride + 1; window starts at
                 i*stride - padding/2; outside the image never wins.
  route          layers (relative if negative); groups/group_id take channel
                 slice [gid*C/groups, (gid+1)*C/groups) of each input.
  shortcut       act(prev + sum of 'from'), activation default linear.
  upsample       nearest, stride (2), out = scale (1) * in.
  yolo           logistic on every channel but w, h (entries 2, 3 of each
                 anchor block); x, y: scale_x_y*s - (scale_x_y - 1)/2.
  activations    leaky 0.1, mish x*tanh(softplus x), logistic, relu, swish
                 x*logistic(x), tanh, linear.
"""
import struct
import sys

import torch
import torch.nn.functional as F

TOL_OUT = 1e-3    # free-running layer outputs, training and inference ...
DRIFT_FACTOR = 8  # ... or this times a float32 reference's own drift
TOL_STEP = 1e-4   # anchored: one layer's output from the engine's inputs
TOL_GRAD = 2e-4   # anchored: d loss / d (every output, param, the input)
KINDS = ("out", "inf", "step", "infstep", "rolled", "dout", "grad")
BN_EPS = 1e-6     # darknet adds it to the standard deviation
MAGIC = 0x444E4857
VERSION = 1

# ---------------------------------------------------------------- the dump


def read_dump(path):
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def u32():
        nonlocal pos
        v = struct.unpack_from("<I", buf, pos)[0]
        pos += 4
        return v

    if u32() != MAGIC:
        raise SystemExit("%s: not a netdump file (bad magic)" % path)
    ver = u32()
    if ver != VERSION:
        raise SystemExit("%s: netdump version %d, expected %d" % (path, ver, VERSION))
    n = u32()
    cfg = buf[pos:pos + n].decode("ascii")
    pos += n
    arrays = {}
    for _ in range(u32()):
        ln = u32()
        name = buf[pos:pos + ln].decode("ascii")
        pos += ln
        dims = [u32() for _ in range(u32())]
        count = 1
        for d in dims:
            count *= d
        t = torch.frombuffer(bytearray(buf[pos:pos + 4 * count]), dtype=torch.float32)
        pos += 4 * count
        arrays[name] = t.reshape(dims).to(torch.float64)
    if pos != len(buf):
        raise SystemExit("%s: %d trailing bytes" % (path, len(buf) - pos))
    return cfg, arrays


# ---------------------------------------------------------------- the cfg


def parse_cfg(text):
    """[(type, {key: value})] as darknet reads it: whitespace dropped,
    '#'/';' comment lines skipped, a trailing comment after a value dropped."""
    sections = []
    for raw in text.splitlines():
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            sections.append((line[1:line.index("]")], {}))
            continue
        key, val = line.split("=", 1)
        for c in "#;":
            if c in val:
                val = val[:val.index(c)]
        sections[-1][1][key] = val
    return sections


def ints(s):
    return [int(v) for v in s.split(",") if v != ""]


# ---------------------------------------------------------------- layers

def leaky(x):
    return torch.where(x > 0, x, 0.1 * x)


ACT = {
    "linear": lambda x: x,
    "leaky": leaky,
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
    "logistic": torch.sigmoid,
    "relu": torch.relu,
    "swish": lambda x: x * torch.sigmoid(x),
    "tanh": torch.tanh,
}

KEYS = {  # the keys that change the arithmetic; anything else is refused
    "convolutional": {"filters", "size", "stride", "pad", "padding", "groups",
                      "batch_normalize", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride", "scale"},
}
YOLO_IGNORED = {"anchors", "jitter", "ignore_thresh", "truth_thresh", "iou_thresh",
                "random", "resize", "cls_normalizer", "obj_normalizer",
                "iou_normalizer", "max_delta", "label_smooth_eps",
                "objectness_smooth", "focal_loss", "iou_loss", "nms_kind",
                "beta_nms", "max", "counters_per_class", "loss_norm"}


class Net:
    def __init__(self, sections, arrays):
        if sections[0][0] != "net":
            raise SystemExit("cfg does not start with [net]")
        self.layers = sections[1:]
        self.A = arrays
        for i, (t, kv) in enumerate(self.layers):
            allowed = KEYS.get(t)
            if t == "yolo":
                allowed = {"classes", "mask", "num", "scale_x_y", "new_coords"} | YOLO_IGNORED
                if int(kv.get("new_coords", "0")) != 0:
                    raise SystemExit("layer %d: new_coords=1 not modelled" % i)
            if allowed is None:
                raise SystemExit("layer %d: no reference for [%s]" % (i, t))
            extra = set(kv) - allowed
            if extra:
                raise SystemExit("layer %d [%s]: keys not modelled: %s" % (i, t, sorted(extra)))
        # leaf tensors: trainable parameters and the input
        self.params = {}
        for name, t in arrays.items():
            if name.startswith("param."):
                _, i, pname = name.split(".", 2)
                leaf = t.clone()
                if pname in ("biases", "scales", "weights"):
                    leaf.requires_grad_(True)
                self.params[(int(i), pname)] = leaf

    def idx(self, i, v):
        return i + v if v < 0 else v

    def forward(self, x, train, anchor=None):
        """Every layer's output; in training also the rolling statistics.

        anchor: the engine's outputs, by layer. Each layer then reads the
        engine's values of its inputs, a + (y - y.detach()): the value is the
        engine's, the gradient flows on through the reference's y. Every
        output is then the layer's own arithmetic on the engine's inputs, and
        backward is the float64 chain rule at the engine's activations."""
        outs, rolled = [], {}
        seen = []  # what later layers read
        for i, (t, kv) in enumerate(self.layers):
            prev = x if i == 0 else seen[i - 1]
            y = getattr(self, "l_" + t)(i, kv, prev, seen, train, rolled)
            outs.append(y)
            if anchor is not None:
                a = anchor[i]
                seen.append(a + (y - y.detach()) if y.requires_grad else a)
            else:
                seen.append(y)
        return outs, rolled

    def l_convolutional(self, i, kv, x, outs, train, rolled):
        filters = int(kv["filters"])
        size = int(kv.get("size", "1"))
        stride = int(kv.get("stride", "1"))
        pad = size // 2 if int(kv.get("pad", "0")) else int(kv.get("padding", "0"))
        groups = int(kv.get("groups", "1"))
        bn = int(kv.get("batch_normalize", "0"))
        act = ACT[kv.get("activation", "logistic")]
        P = self.params
        w = P[(i, "weights")].view(filters, x.shape[1] // groups, size, size)
        z = F.conv2d(x, w, None, stride, pad, 1, groups)
        b = P[(i, "biases")].view(1, -1, 1, 1)
        if not bn:
            return act(z + b)
        s = P[(i, "scales")].view(1, -1, 1, 1)
        if train:
            m = z.shape[0] * z.shape[2] * z.shape[3]
            mean = z.mean(dim=(0, 2, 3), keepdim=True)
            var = ((z - mean) ** 2).sum(dim=(0, 2, 3), keepdim=True) / (m - 1)
            rolled[(i, "rolling_mean")] = 0.99 * P[(i, "rolling_mean")] + 0.01 * mean.detach().flatten()
            rolled[(i, "rolling_variance")] = (0.99 * P[(i, "rolling_variance")] +
                                               0.01 * var.detach().flatten())
        else:
            mean = P[(i, "rolling_mean")].view(1, -1, 1, 1)
            var = P[(i, "rolling_variance")].view(1, -1, 1, 1)
        xhat = (z - mean) / (torch.sqrt(var) + BN_EPS)
        return act(s * xhat + b)

    def l_maxpool(self, i, kv, x, outs, train, rolled):
        stride = int(kv.get("stride", "1"))
        size = int(kv.get("size", str(stride)))
        padding = int(kv.get("padding", str(size - 1)))
        h, w = x.shape[2], x.shape[3]
        oh = (h + padding - size) // stride + 1
        ow = (w + padding - size) // stride + 1
        top = padding // 2
        # rows i*stride - top + [0, size) for i < oh: pad with -inf, then pool
        bottom = max(0, (oh - 1) * stride + size - h - top)
        right = max(0, (ow - 1) * stride + size - w - top)
        xp = F.pad(x, (top, right, top, bottom), value=float("-inf"))
        y = F.max_pool2d(xp, size, stride)
        return y[:, :, :oh, :ow]

    def l_route(self, i, kv, x, outs, train, rolled):
        groups = int(kv.get("groups", "1"))
        gid = int(kv.get("group_id", "0"))
        parts = []
        for v in ints(kv["layers"]):
            t = outs[self.idx(i, v)]
            c = t.shape[1] // groups
            parts.append(t[:, gid * c:(gid + 1) * c])
        return torch.cat(parts, dim=1)

    def l_shortcut(self, i, kv, x, outs, train, rolled):
        y = x
        for v in ints(kv["from"]):
            y = y + outs[self.idx(i, v)]
        return ACT[kv.get("activation", "linear")](y)

    def l_upsample(self, i, kv, x, outs, train, rolled):
        stride = int(kv.get("stride", "2"))
        scale = float(kv.get("scale", "1"))
        y = x.repeat_interleave(stride, dim=2).repeat_interleave(stride, dim=3)
        return scale * y

    def l_yolo(self, i, kv, x, outs, train, rolled):
        classes = int(kv.get("classes", "20"))
        mask = ints(kv.get("mask", ""))
        n = len(mask) if mask else int(kv.get("num", "1"))
        sxy = float(kv.get("scale_x_y", "1"))
        nb, c, h, w = x.shape
        if c != n * (5 + classes):
            raise SystemExit("layer %d: %d channels, expected %d" % (i, c, n * (5 + classes)))
        v = x.view(nb, n, 5 + classes, h, w)
        xy = sxy * torch.sigmoid(v[:, :, 0:2]) - 0.5 * (sxy - 1)
        wh = v[:, :, 2:4]
        rest = torch.sigmoid(v[:, :, 4:])
        return torch.cat([xy, wh, rest], dim=2).reshape(nb, c, h, w)


# ---------------------------------------------------------------- compare


def rel_err(got, ref):
    got, ref = got.detach(), ref.detach()
    if got.shape != ref.shape:
        return float("inf"), "shape %s vs %s" % (list(got.shape), list(ref.shape))
    diff = (got - ref).abs().max().item() if ref.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    return (diff / scale if scale > 0 else diff), "max|ref| %.3g" % scale


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: crosscheck.py DUMP.bin")
    torch.set_num_threads(1)
    cfg_text, A = read_dump(sys.argv[1])
    net = Net(parse_cfg(cfg_text), A)
    n = len(net.layers)
    types = [t for t, _ in net.layers]
    yolos = [i for i, t in enumerate(types) if t == "yolo"]
    if not yolos:
        raise SystemExit("no [yolo] layer: nothing to back-propagate")
    results = []  # (kind, tensor, layer or None, err, tol, note)

    def check(kind, name, layer, got, ref, tol):
        err, note = rel_err(got, ref)
        results.append((kind, name, layer, err, tol, note))

    # 1. free-running: the reference's own activations from the input on.
    #    Rounding grows with depth here for any float32 implementation (a
    #    deep batch-norm net at init amplifies perturbations; yolov4 with 2x2
    #    maps at batch 2 reaches ~5e-3), so the tolerance is TOL_OUT or
    #    DRIFT_FACTOR times what the same reference run in float32 drifts
    #    from float64 up to that layer, whichever is larger.
    net32 = Net(parse_cfg(cfg_text), {k: v.float() for k, v in A.items()})
    for kind, train, prefix in (("out", True, "out."), ("inf", False, "inf.out.")):
        with torch.no_grad():
            ref, _ = net.forward(A["input"], train)
            ref32, _ = net32.forward(A["input"].float(), train)
        drift = 0.0
        for i, y in enumerate(ref):
            drift = max(drift, rel_err(ref32[i].double(), y)[0])
            err, note = rel_err(A[prefix + str(i)], y)
            results.append((kind, prefix + str(i), i, err, max(TOL_OUT, DRIFT_FACTOR * drift),
                            note + ", float32 drift %.1e" % drift))

    # 2. anchored at the engine's activations: each layer alone, and the
    #    chain rule through them (see Net.forward)
    x = A["input"].clone().requires_grad_(True)
    outs, rolled = net.forward(x, train=True, anchor=[A["out.%d" % i] for i in range(n)])
    for y in outs:
        if y.requires_grad:
            y.retain_grad()
    for i, y in enumerate(outs):
        check("step", "out.%d" % i, i, A["out.%d" % i], y, TOL_STEP)
    for (i, pname), r in sorted(rolled.items()):
        check("rolled", "rolled.%d.%s" % (i, pname), i, A["rolled.%d.%s" % (i, pname)], r, TOL_STEP)
    loss = sum((outs[i] * A["dout.%d" % i]).sum() for i in yolos)
    loss.backward()
    for i, y in enumerate(outs):
        g = y.grad if y.grad is not None else torch.zeros_like(y)
        check("dout", "dout.back.%d" % i, i, A["dout.back.%d" % i], g, TOL_GRAD)
    trainable = {k for k, leaf in net.params.items() if leaf.requires_grad}
    for (i, pname) in sorted(trainable):
        check("grad", "grad.%d.%s" % (i, pname), i, A["grad.%d.%s" % (i, pname)],
              net.params[(i, pname)].grad, TOL_GRAD)
    check("grad", "dinput", None, A["dinput"], x.grad, TOL_GRAD)
    for k in A:  # a gradient the engine has and the reference does not
        if k.startswith("grad.") and (int(k.split(".")[1]), k.split(".", 2)[2]) not in trainable:
            results.append(("grad", k, None, float("inf"), TOL_GRAD, "no such parameter here"))
    with torch.no_grad():
        inf_step, _ = net.forward(A["input"], train=False,
                                  anchor=[A["inf.out.%d" % i] for i in range(n)])
    for i, y in enumerate(inf_step):
        check("infstep", "inf.out.%d" % i, i, A["inf.out.%d" % i], y, TOL_STEP)

    # the table: the nearest to failing of each kind, then every failure
    def row(r):
        where = "" if r[2] is None else " [%s]" % types[r[2]]
        return "%-8s %-44s %9.2e %8.1e  %s" % (r[0], r[1] + where, r[3], r[4], r[5])
    print("%-8s %-44s %9s %8s" % ("kind", "tensor", "rel.err", "tol"))
    for kind in KINDS:
        rs = sorted((r for r in results if r[0] == kind), key=lambda r: -r[3] / r[4])
        for r in rs[:2]:
            print(row(r))
    failed = [r for r in results if not r[3] < r[4]]
    for r in failed[:40]:
        print("FAIL " + row(r))
    if len(failed) > 40:
        print("FAIL ... and %d more" % (len(failed) - 40))
    print("crosscheck: %d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
