#!/usr/bin/env sh
# Install, migrate, seed the demo county and serve on the embedded SQLite database.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/jiahe migrate
.venv/bin/jiahe seed-demo
exec .venv/bin/jiahe serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
