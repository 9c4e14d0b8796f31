#!/usr/bin/env bash
# Set up dpgen_lite on a fresh Debian machine and run the quickstart or the tests.
#   bash run.sh quickstart   install, then run examples/cu_emt in runs/cu_emt
#   bash run.sh test         install, then run the test suite
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv

install() {  # $1: pip extras of dpgen_lite (the tests: test,pt), none by default
    # Debian packages: CP2K (real DFT for the cp2k fp style and its tests); Slurm, munge and
    # sshd (the HPC tests start a one-node cluster and an SSH server on 127.0.0.1)
    if ! command -v cp2k.psmp >/dev/null || [ ! -d /usr/share/cp2k/data ] \
        || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null || [ ! -x /usr/sbin/sshd ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cp2k cp2k-data slurm-wlm munge openssh-server >/dev/null
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".${1:+[$1]}"
}

quickstart() {
    rm -rf runs/cu_emt
    mkdir -p runs
    cp -r examples/cu_emt runs/cu_emt
    cd runs/cu_emt
    "$VENV/bin/dpgen" init_bulk init.json
    "$VENV/bin/python" make_test_set.py test_set
    "$VENV/bin/dpgen" run param.json
    "$VENV/bin/dpgen" report .
    echo "quickstart finished: see runs/cu_emt/dpgen.log, record.dpgen, iter.*/, models/ and report/"
}

case "${1:-}" in
    quickstart) install; quickstart ;;
    test) install test,pt; shift; exec "$VENV/bin/python" -m pytest -v --durations=15 "$@" ;;
    *) echo "usage: bash run.sh quickstart|test" >&2; exit 2 ;;
esac
