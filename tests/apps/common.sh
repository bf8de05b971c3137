# Sourced by the command-line tests: W is the whittle binary (the first
# argument), T a scratch folder removed at exit, check records one result.
set -u
W="$1"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # description, condition result
    if [ "$2" -eq 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
export OMP_WAIT_POLICY=passive # a shared machine: spinning threads only slow it down
. "$(dirname "${BASH_SOURCE[0]}")/../need.sh"
