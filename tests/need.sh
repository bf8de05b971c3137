# Sourced by the script tests: what to do when a test cannot run here.
# The test command (scripts/test.sh) installs everything the suite needs, so a
# missing tool is a failure, never a silent skip. A user may choose to skip a
# kind of check on purpose: scripts/test.sh --skip NAME[,NAME] exports
# WH_TEST_SKIP, and the test then says "skipped by choice" and ctest counts it
# as skipped (exit 77) in its summary. NAMEs:
#   mpi     app_mpi: Open MPI's mpirun and a whittle built with MPI
#   python  /usr/bin/python3 with PyTorch (torch_crosscheck) and h5py
#   mount   app_crash's full-disk and read-only checks: mounting a tmpfs (root)

# wh_skip_chosen NAME: true when the user chose to skip NAME
wh_skip_chosen() {
    case ",${WH_TEST_SKIP:-}," in *",$1,"*) return 0 ;; *) return 1 ;; esac
}

# wh_cannot_run NAME WHY: the whole test cannot run. Exits 77 (skipped) when
# the user chose to skip NAME, otherwise 1 (failed) saying how to fix it.
wh_cannot_run() {
    if wh_skip_chosen "$1"; then
        echo "skipped by choice (--skip $1): $2"
        exit 77
    fi
    echo "FAIL: cannot run: $2"
    echo "      (scripts/install-deps.sh installs what the suite needs; to skip on purpose: scripts/test.sh --skip $1)"
    exit 1
}

# wh_part_cannot_run NAME WHY: one part of a test cannot run. Prints the
# chosen skip and returns 0, or prints the failure and returns 1 (the caller
# records it with check).
wh_part_cannot_run() {
    if wh_skip_chosen "$1"; then
        echo "skipped by choice (--skip $1): $2"
        return 0
    fi
    echo "cannot run: $2 (to skip on purpose: scripts/test.sh --skip $1)"
    return 1
}
