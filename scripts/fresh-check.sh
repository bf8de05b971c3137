#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 machine, so that no package
# a developer's machine (or CI's) happens to have can hide a missing install
# step again (issue 18: libdnnl-dev's OpenCL dependency was such a step).
#   scripts/fresh-check.sh [--keep] [--dir DIR] [--suite bookworm]
# Makes a minimal Debian root with debootstrap (--variant=minbase: only the
# packages Debian requires, about 40 s), clones the checked-out commit into
# it (committed files only: the check is of what a user would clone), and
# runs there, as root, in an empty environment, exactly the README's
#   ./scripts/demo.sh --budget smoke   (the demo with its shortest budget)
#   ./scripts/test.sh
# The root's apt uses the archive this machine's apt uses (the first URI of
# its sources for the suite; WH_FRESH_MIRROR overrides it) and this machine's
# apt.conf.d settings (a proxy, say). Mounts (/proc, /sys, a tmpfs on
# /dev/shm) live in a private mount namespace of their own, so they vanish
# with it and the root can be removed safely. The root is removed at the end
# unless --keep; DIR defaults to build-fresh/ (about 4 GB while it runs).
# Needs root, debootstrap (installed if missing), unshare and chroot: where
# they cannot work this check FAILS, it never skips. Log: DIR/fresh.log.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIR=$REPO/build-fresh
SUITE=bookworm
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) KEEP=1 ;;
    --dir) DIR=$(realpath -m "$2"); shift ;;
    --suite) SUITE=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
fail() {
    echo "fresh-check: FAILED: $*" >&2
    exit 1
}
ROOT=$DIR/root
LOG=$DIR/fresh.log

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, mount and chroot); run it as root or under sudo"
command -v unshare > /dev/null && command -v chroot > /dev/null || fail "unshare and chroot are missing (util-linux, coreutils)"
COMMIT=$(git -C "$REPO" rev-parse HEAD) || fail "$REPO is not a git checkout: nothing to clone"
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
    echo "fresh-check: note: uncommitted changes are not checked, only commit $COMMIT"

if ! command -v debootstrap > /dev/null; then
    echo "fresh-check: installing debootstrap" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap > /dev/null ||
        fail "cannot install debootstrap"
fi

# The archive this machine reaches: the first URI listed for the suite
# (deb822 .sources files, then one-line .list files).
mirror=${WH_FRESH_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2> /dev/null | awk -v s="$SUITE" '
        /^[ \t]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0; next }
        /^URIs:/ { u = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
        END { if (u != "" && ok) print u }' | head -1)
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null |
        sed -n "s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) $SUITE .*/\2/p" | head -1)
fi
[ -n "$mirror" ] || fail "no Debian archive for $SUITE in this machine's apt sources (set WH_FRESH_MIRROR)"

# A root left mounted by a killed run would make rm -rf reach into /proc or
# /dev: refuse rather than guess.
if grep -q " $ROOT[/ ]" /proc/self/mounts; then
    fail "something is still mounted under $ROOT; unmount it first"
fi
rm -rf "$ROOT"
mkdir -p "$DIR"
: > "$LOG"
say() { echo "$*" >> "$LOG"; } # printed with the rest of the summary below

t0=$(date +%s)
say "== fresh-check: commit $COMMIT on a minimal Debian $SUITE root ($ROOT)"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" >> "$LOG" 2>&1 ||
    fail "debootstrap failed (the last lines of $LOG:)$(echo; tail -5 "$LOG")"
say "== debootstrap: $(chroot "$ROOT" dpkg-query -W | wc -l) packages, $(cat "$ROOT/etc/debian_version"), $(($(date +%s) - t0)) s"

# This machine's way of reaching the archive (proxies, validity checks),
# without overriding the root's own settings; its name resolution.
for f in /etc/apt/apt.conf.d/*; do
    [ -f "$f" ] && [ ! -e "$ROOT/etc/apt/apt.conf.d/$(basename "$f")" ] && cp "$f" "$ROOT/etc/apt/apt.conf.d/"
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2> /dev/null || true
git clone -q --no-hardlinks "$REPO" "$ROOT/root/whittle" && git -C "$ROOT/root/whittle" checkout -q --detach "$COMMIT" ||
    fail "cannot clone $REPO into the root"

# Inside a private mount namespace: the mounts end with it.
set +e
unshare --mount --propagation private -- bash -s "$ROOT" >> "$LOG" 2>&1 <<'INSIDE'
set -e
R=$1
mount -t proc proc "$R/proc" || { echo "fresh-check: FAILED: cannot mount /proc in the root"; exit 100; }
mount -t sysfs sysfs "$R/sys" || { echo "fresh-check: FAILED: cannot mount /sys in the root"; exit 100; }
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm" || { echo "fresh-check: FAILED: cannot mount /dev/shm in the root"; exit 100; }
chroot "$R" /usr/bin/true || { echo "fresh-check: FAILED: cannot chroot into $R"; exit 100; }
# A new user's shell: no variable of ours, not even CI.
exec chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c < /dev/null '
cd /root/whittle
s=$(date +%s)
echo "== ./scripts/demo.sh --budget smoke"
./scripts/demo.sh --budget smoke || { echo "fresh-check: FAILED: ./scripts/demo.sh exited $?"; exit 101; }
echo "== demo: $(($(date +%s) - s)) s"
s=$(date +%s)
echo "== ./scripts/test.sh"
./scripts/test.sh || { echo "fresh-check: FAILED: ./scripts/test.sh exited $?"; exit 102; }
echo "== tests: $(($(date +%s) - s)) s"
echo "== packages the README was checked with (Debian $(cat /etc/debian_version)):"
dpkg-query -W -f="== package \${Package} \${Version}\n" libdnnl-dev ocl-icd-opencl-dev libhdf5-dev libgtest-dev \
    libjpeg62-turbo-dev libpng-dev libxml2-dev libcjson-dev libopenmpi-dev python3-torch python3-h5py cmake gcc clang
'
INSIDE
rc=$?
set -e
# What a CI log needs to show: the install, the build's end, the demo's
# table, the test count and every failed check of a script test (FAIL: ...).
grep -E "^(== |install-deps: |fresh-check: |\| |[0-9]+% tests passed|Total Test time|The following tests|test.sh: |FAIL: )" "$LOG" || true
if grep -q " $ROOT[/ ]" /proc/self/mounts; then
    fail "mounts remain under $ROOT after the check; not removing it"
fi
[ $rc -eq 0 ] || fail "exit $rc in the fresh root: the last lines of $LOG:$(echo; tail -40 "$LOG")"
[ $KEEP -eq 1 ] || rm -rf "$ROOT"
echo "== fresh-check: passed in $(($(date +%s) - t0)) s (log: $LOG)" | tee -a "$LOG"
