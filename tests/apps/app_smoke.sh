#!/usr/bin/env bash
# The command line end to end: model -> info, the darknet totals, mkdata's
# presets, and bad input giving a clear error and a non-zero exit without
# touching files.
. "$(dirname "$0")/common.sh" "$@"

"$W" model yolov4 -o "$T/yolov4.cfg" 2>/dev/null; check "model yolov4 writes a cfg" $?
"$W" info "$T/yolov4.cfg" > "$T/info.txt"; check "info yolov4 runs" $?
grep -q "^Total BFLOPS (darknet's count: + maxpool + shortcut): 60.137$" "$T/info.txt"; check "yolov4 darknet total is 60.137 BFLOPs" $?
grep -q "^Total parameters: 64363101 " "$T/info.txt"; check "yolov4 has 64,363,101 parameters" $?
"$W" model yolov4-tiny -o "$T/tiny.cfg" 2>/dev/null && "$W" info "$T/tiny.cfg" --json > "$T/tiny.json"
grep -q '"params": 6056606, .*"darknet_bflops": 6.910' "$T/tiny.json"; check "yolov4-tiny json totals" $?

# bad input: an error naming the line, exit status non-zero, the file intact
printf '[net]\nwidth=416\nheight=416\n[convolutional]\nfilters=abc\n' > "$T/bad.cfg"
cp "$T/bad.cfg" "$T/bad.before"
"$W" info "$T/bad.cfg" 2> "$T/err.txt"; rc=$?
[ $rc -ne 0 ]; check "malformed cfg exits non-zero" $?
grep -q "bad.cfg:5" "$T/err.txt"; check "the error names file:line" $?
cmp -s "$T/bad.cfg" "$T/bad.before"; check "the input file is untouched" $?
"$W" info "$T/missing.cfg" 2>/dev/null; [ $? -ne 0 ]; check "missing cfg exits non-zero" $?
"$W" model yolov9 -o "$T/x.cfg" 2> "$T/err2.txt"; [ $? -ne 0 ] && grep -q "yolov4-tiny" "$T/err2.txt"; check "unknown model lists the known ones" $?
[ ! -e "$T/x.cfg" ]; check "no file written on error" $?
cp "$T/yolov4.cfg" "$T/keep.cfg"
"$W" model yolov4 --classes 0 -o "$T/keep.cfg" 2>/dev/null; [ $? -ne 0 ] && cmp -s "$T/keep.cfg" "$T/yolov4.cfg"; check "a bad flag leaves the existing output intact" $?
"$W" info "$T/yolov4.cfg" --bogus 2>/dev/null; [ $? -eq 2 ]; check "unknown flag exits 2" $?

# mkdata's presets: an unknown one is a usage error (exit 2) that says what
# is known and writes nothing; a hard folder is refused for the easy options.
"$W" mkdata --out "$T/m" --preset bogus 2> "$T/err3.txt"; [ $? -eq 2 ]; check "mkdata --preset bogus exits 2" $?
grep -q "preset expects easy or hard, got 'bogus'" "$T/err3.txt"; check "the error names the presets" $?
[ ! -e "$T/m" ]; check "no folder written for a bad preset" $?
"$W" mkdata --help | grep -q -- "--preset P"; check "mkdata --help lists --preset" $?
"$W" mkdata --out "$T/m" --preset hard --images 3 --size 64 > "$T/mk.txt"; check "mkdata --preset hard runs" $?
grep -q "preset hard" "$T/mk.txt" && grep -qx "preset hard" "$T/m/synth.txt"; check "the hard preset is stamped" $?
[ "$(wc -l < "$T/m/classes.txt")" -eq 6 ]; check "the hard preset's default is 6 classes" $?
"$W" mkdata --out "$T/m" --images 3 --size 64 --classes 6 2> "$T/err4.txt"; [ $? -ne 0 ] && grep -q "preset hard" "$T/err4.txt"
check "a hard folder is refused for the easy preset" $?
exit $fail
