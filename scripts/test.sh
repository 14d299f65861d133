#!/usr/bin/env sh
# Install with the development extras and run the whole test suite.
# Database: SQLite by default; JIAHE_TEST_DATABASE_URL=postgresql+asyncpg://… runs it on a
# fresh PostgreSQL database of that name (dropped and recreated by the suite).
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# JIAHE_SKIP_INSTALL=1: the environment is installed already (.ci/run installs once, then runs
# the SQLite and PostgreSQL suites side by side: two pip runs at once would race).
if [ "${JIAHE_SKIP_INSTALL:-}" != 1 ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e '.[dev]'
fi
exec .venv/bin/pytest "$@"
