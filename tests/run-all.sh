#!/usr/bin/env bash
# Install everything the test suite needs, start the services it uses, run it all, stop them.
# This is the README's test command and what .ci/run calls. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
echo "== installing dshell and the test dependencies" >&2
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
"$PY" -c 'import dshell, pytest, pexpect' # fail loudly if the install did not take

echo "== lint and types" >&2
"$PY" -m ruff check dshell plugins tests bench
"$PY" -m mypy

echo "== tests" >&2
rc=0
"$PY" -m pytest -q -p no:randomly "$@" || rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
