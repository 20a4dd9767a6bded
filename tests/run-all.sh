#!/usr/bin/env bash
# Install everything the test suite needs, start the services it uses, run it all, stop them.
# This is the README's test command and what .ci/run calls. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
echo "== installing dshell and the test dependencies (with Ray: tests/ray)" >&2
"$PY" -m pip install -q --disable-pip-version-check -e '.[test,ray]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
"$PY" -c 'import dshell, pytest, pexpect' # fail loudly if the install did not take

echo "== services: sshd, Slurm, ZooKeeper (tests/services/services.sh)" >&2
export SVC=${SVC:-/tmp/dshell-svc}
# shellcheck source=services/services.sh
source tests/services/services.sh
trap svc_stop_all EXIT
svc_try() {  # a service that does not start fails the run in CI; elsewhere its tests skip
  "$@" && return 0
  if [ "${CI:-}" = true ]; then echo "FAILED to start a required service: $*" >&2; exit 1; fi
  echo "warning: '$*' failed; the tests that need it will be skipped" >&2
  return 1
}
if [ "${DSHELL_SKIP_APT:-}" != 1 ]; then svc_try svc_install_apt || true; fi
if svc_try sshd_start; then
  export DSHELL_TEST_SSH_KEY=$SVC/ssh/id_ed25519 DSHELL_TEST_KNOWN_HOSTS=$SVC/ssh/known_hosts
fi
if svc_try slurm_start 3; then export SLURM_CONF; else unset SLURM_CONF; fi
if svc_try zk_ensemble_start; then  # 3 members; tests/zk kills and restarts one of them
  export DSHELL_TEST_ZK=127.0.0.1:2281,127.0.0.1:2282,127.0.0.1:2283 DSHELL_TEST_ZK_DIR=$SVC/zk-ens
fi

echo "== lint and types" >&2
"$PY" -m ruff check dshell plugins tests bench
"$PY" -m mypy

echo "== tests" >&2
rc=0
"$PY" -m pytest -q -p no:randomly --durations=15 "$@" || rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
