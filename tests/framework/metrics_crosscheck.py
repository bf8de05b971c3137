#!/usr/bin/env python3
"""Cross-check of `whittle map` against independent Python references.

Not run by ctest (it needs numpy); run by hand after changing framework/eval/metrics.c:

    python3 tests/framework/metrics_crosscheck.py BUILD/whittle [n_cases]

Each case writes a random VOC tree (Annotations/, ImageSets/Main/test.txt,
empty JPEGImages/*.jpg) and a random detections file (jittered hits, duplicate
hits, misses, score ties, difficult objects, classes without ground truth),
runs `whittle map` with every metric and compares each class's AP and the mean
with:
  - voc07 / voc: a transcription of the devkit's voc_eval.py (py-faster-rcnn),
    with a stable sort (MATLAB's sort, as VOCevaldet.m) and the 11-point
    thresholds compared exactly (recall >= k/10);
  - coco: a transcription of pycocotools' COCOeval.evaluateImg / accumulate
    with maskUtils' bbox IoU (crowd: intersection / detection area), difficult
    objects as iscrowd=1, boxes as [xmin - 1, ymin - 1, w + 1, h + 1].
whittle prints 4 decimals, so values agree to 5e-5 + rounding.
Exit status 0 when every case agrees.
"""
import os
import random
import re
import subprocess
import sys
import tempfile

import numpy as np

VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor"]


# ---------------------------------------------------------------- data

def make_case(rng, n_images):
    """gt[img] = list of (cls, box, difficult); dets = list of (img, cls, score, box)."""
    used = rng.sample(range(20), 4)  # classes with ground truth
    gt = []
    for _ in range(n_images):
        objs = []
        for _ in range(rng.randint(0, 5)):
            c = rng.choice(used)
            x1, y1 = rng.randint(1, 300), rng.randint(1, 300)
            w, h = rng.randint(4, 120), rng.randint(4, 120)
            objs.append((c, (x1, y1, x1 + w - 1, y1 + h - 1), 1 if rng.random() < 0.15 else 0))
        gt.append(objs)
    dets = []
    score = lambda: round(rng.random(), 2)  # coarse: many ties
    for i, objs in enumerate(gt):
        for c, (x1, y1, x2, y2), _ in objs:
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
                j = lambda v, s: v + rng.uniform(-s, s)
                s = 0.25 * min(x2 - x1 + 1, y2 - y1 + 1)
                a, b = round(j(x1, s), 1), round(j(y1, s), 1)
                dets.append((i, c, score(), (a, b, max(a, round(j(x2, s), 1)), max(b, round(j(y2, s), 1)))))
        for _ in range(rng.randint(0, 3)):  # misses, some in classes without ground truth
            c = rng.choice(used + [rng.randrange(20)])
            x1, y1 = rng.uniform(1, 300), rng.uniform(1, 300)
            dets.append((i, c, score(), (round(x1, 1), round(y1, 1), round(x1 + rng.uniform(3, 100), 1),
                                         round(y1 + rng.uniform(3, 100), 1))))
    rng.shuffle(dets)
    return gt, dets


def write_case(root, gt, dets):
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    ids = ["%06d" % (i + 1) for i in range(len(gt))]
    with open(os.path.join(root, "ImageSets/Main/test.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids))
    for i, objs in zip(ids, gt):
        open(os.path.join(root, "JPEGImages", i + ".jpg"), "w").close()
        xml = ["<annotation><filename>%s.jpg</filename><size><width>500</width><height>500</height>"
               "<depth>3</depth></size>" % i]
        for c, (x1, y1, x2, y2), d in objs:
            xml.append("<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin>"
                       "<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>"
                       % (VOC[c], d, x1, y1, x2, y2))
        xml.append("</annotation>\n")
        with open(os.path.join(root, "Annotations", i + ".xml"), "w") as f:
            f.write("".join(xml))
    path = os.path.join(root, "dets.txt")
    with open(path, "w") as f:
        for img, c, s, b in dets:
            f.write("%s %s %s %s %s %s %s\n" % (ids[img], VOC[c], s, *b))
    return path


# ---------------------------------------------------------------- references

def f32(v):
    """whittle keeps detections as float32."""
    return float(np.float32(v))


def voc_eval_class(gt, dets, c, use_07):
    """voc_eval.py for one class; returns (ap or None, npos)."""
    R = {}
    npos = 0
    for i, objs in enumerate(gt):
        bb = np.array([o[1] for o in objs if o[0] == c], dtype=np.float64).reshape(-1, 4)
        diff = np.array([o[2] for o in objs if o[0] == c], dtype=bool)
        npos += int((~diff).sum())
        R[i] = {"bbox": bb, "difficult": diff, "det": [False] * len(diff)}
    mine = [d for d in dets if d[1] == c]
    image_ids = [d[0] for d in mine]
    confidence = np.array([f32(d[2]) for d in mine])
    BB = np.array([[f32(v) for v in d[3]] for d in mine]).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="mergesort")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        r = R[image_ids[d]]
        bb = BB[d, :]
        ovmax = -np.inf
        BBGT = r["bbox"]
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1., 0.)
            ih = np.maximum(iymax - iymin + 1., 0.)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.) +
                   (BBGT[:, 2] - BBGT[:, 0] + 1.) * (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > 0.5:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.
                    r["det"][jmax] = 1
                else:
                    fp[d] = 1.
        else:
            fp[d] = 1.
    if npos == 0:
        return None, 0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07:
        ap = 0.
        for k in range(11):
            p = np.max(prec[tp * 10 >= k * npos]) if np.any(tp * 10 >= k * npos) else 0
            ap = ap + p / 11.
    else:
        mrec = np.concatenate(([0.], rec, [1.]))
        mpre = np.concatenate(([0.], prec, [0.]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap, npos


def bb_iou(D, G, crowd):
    """maskUtils.iou for [x, y, w, h] boxes."""
    o = np.zeros((len(D), len(G)))
    for d, dd in enumerate(D):
        da = dd[2] * dd[3]
        for g, gg in enumerate(G):
            w = min(dd[2] + dd[0], gg[2] + gg[0]) - max(dd[0], gg[0])
            if w <= 0:
                continue
            h = min(dd[3] + dd[1], gg[3] + gg[1]) - max(dd[1], gg[1])
            if h <= 0:
                continue
            i = w * h
            u = da if crowd[g] else da + gg[2] * gg[3] - i
            o[d, g] = i / u
    return o


def coco_eval_class(gt, dets, c):
    """COCOeval (bbox, area 'all', maxDets 100) for one category; returns ap or None."""
    xywh = lambda b: [b[0] - 1, b[1] - 1, b[2] - b[0] + 1, b[3] - b[1] + 1]
    iouThrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
    recThrs = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
    maxDet = 100
    T, R = len(iouThrs), len(recThrs)
    E = []
    for img, objs in enumerate(gt):
        g_all = [{"bbox": xywh(o[1]), "iscrowd": o[2], "_ignore": o[2], "id": k + 1}
                 for k, o in enumerate(x for x in objs if x[0] == c)]
        d_all = [{"bbox": xywh([f32(v) for v in d[3]]), "score": f32(d[2]), "id": k + 1}
                 for k, d in enumerate(x for x in dets if x[0] == img and x[1] == c)]
        if not g_all and not d_all:
            continue
        inds = np.argsort([-d["score"] for d in d_all], kind="mergesort")
        dt_iou = [d_all[i] for i in inds][:maxDet]
        ious = bb_iou([d["bbox"] for d in dt_iou], [g["bbox"] for g in g_all],
                      [g["iscrowd"] for g in g_all])
        gtind = np.argsort([g["_ignore"] for g in g_all], kind="mergesort")
        gts = [g_all[i] for i in gtind]
        dts = [d_all[i] for i in inds[0:maxDet]]
        iscrowd = [int(o["iscrowd"]) for o in gts]
        if ious.size:
            ious = ious[:, gtind]
        G, D = len(gts), len(dts)
        gtm = np.zeros((T, G))
        dtm = np.zeros((T, D))
        gtIg = np.array([g["_ignore"] for g in gts])
        dtIg = np.zeros((T, D))
        if ious.size:
            for tind, t in enumerate(iouThrs):
                for dind, d in enumerate(dts):
                    iou = min([t, 1 - 1e-10])
                    m = -1
                    for gind, g in enumerate(gts):
                        if gtm[tind, gind] > 0 and not iscrowd[gind]:
                            continue
                        if m > -1 and gtIg[m] == 0 and gtIg[gind] == 1:
                            break
                        if ious[dind, gind] < iou:
                            continue
                        iou = ious[dind, gind]
                        m = gind
                    if m == -1:
                        continue
                    dtIg[tind, dind] = gtIg[m]
                    dtm[tind, dind] = gts[m]["id"]
                    gtm[tind, m] = d["id"]
        E.append({"dtScores": [d["score"] for d in dts], "dtMatches": dtm, "dtIgnore": dtIg,
                  "gtIgnore": gtIg})
    if not E:
        return None
    dtScores = np.concatenate([e["dtScores"][0:maxDet] for e in E])
    inds = np.argsort(-dtScores, kind="mergesort")
    dtm = np.concatenate([e["dtMatches"][:, 0:maxDet] for e in E], axis=1)[:, inds]
    dtIg = np.concatenate([e["dtIgnore"][:, 0:maxDet] for e in E], axis=1)[:, inds]
    gtIg = np.concatenate([e["gtIgnore"] for e in E])
    npig = np.count_nonzero(gtIg == 0)
    if npig == 0:
        return None
    tps = np.logical_and(dtm, np.logical_not(dtIg))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtIg))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    precision = np.zeros((T, R))
    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
        nd = len(tp)
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        q = np.zeros((R,))
        pr = pr.tolist()
        q = q.tolist()
        for i in range(nd - 1, 0, -1):
            if pr[i] > pr[i - 1]:
                pr[i - 1] = pr[i]
        pinds = np.searchsorted(rc, recThrs, side="left")
        try:
            for ri, pi in enumerate(pinds):
                q[ri] = pr[pi]
        except IndexError:
            pass
        precision[t, :] = np.array(q)
    return float(np.mean(precision))


# ---------------------------------------------------------------- driver

def run_whittle(whittle, root, dets_path, metric):
    out = subprocess.run([whittle, "map", "--gt", root, "--dets", dets_path, "--metric", metric],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("whittle map failed (%d): %s" % (out.returncode, out.stderr))
    aps, mean = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\d\.\d{4}|n/a)\s+(\d+)\s+(\d+)", line)
        if m and m.group(1) in VOC:
            aps[m.group(1)] = None if m.group(2) == "n/a" else float(m.group(2))
        m = re.match(r"^%s .* = (\d\.\d{4}|n/a)" % metric, line)
        if m:
            mean = None if m.group(1) == "n/a" else float(m.group(1))
    if len(aps) != 20:
        raise RuntimeError("could not read the table:\n" + out.stdout)
    return aps, mean


def main():
    whittle = sys.argv[1]
    n_cases = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    bad = 0    # mismatching values
    bad_runs = 0  # (case, metric) pairs with any mismatch
    for case in range(n_cases):
        rng = random.Random(1000 + case)
        gt, dets = make_case(rng, rng.randint(1, 25))
        with tempfile.TemporaryDirectory() as root:
            path = write_case(root, gt, dets)
            for metric in ("voc07", "voc", "coco"):
                got, got_mean = run_whittle(whittle, root, path, metric)
                bad_before = bad
                ref = {}
                for c in range(20):
                    if metric == "coco":
                        ref[VOC[c]] = coco_eval_class(gt, dets, c)
                    else:
                        ref[VOC[c]] = voc_eval_class(gt, dets, c, metric == "voc07")[0]
                valid = [v for v in ref.values() if v is not None]
                ref_mean = float(np.mean(valid)) if valid else None
                for name in VOC:
                    r, g = ref[name], got[name]
                    if (r is None) != (g is None) or (r is not None and abs(r - g) > 5.1e-5):
                        print("case %d %s %s: whittle %s, reference %s" % (case, metric, name, g, r))
                        bad += 1
                if (ref_mean is None) != (got_mean is None) or (
                        ref_mean is not None and abs(ref_mean - got_mean) > 5.1e-5):
                    print("case %d %s mean: whittle %s, reference %s" % (case, metric, got_mean, ref_mean))
                    bad += 1
                bad_runs += bad > bad_before
        print("case %d: %d images, %d detections, %d classes with ground truth" %
              (case, len(gt), len(dets), sum(v is not None for v in ref.values())))
    print("%d passed, %d failed" % (3 * n_cases - bad_runs, bad_runs))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
