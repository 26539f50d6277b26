#!/bin/sh
# Runs the minimal Python OCPP 1.6J central system (python_ocpp_cs.py) on 127.0.0.1:PORT
# (default 9000), for comparison in the load benchmark. The first run creates a venv in
# benches/.venv (git-ignored) and installs the pinned `ocpp` and `websockets` from PyPI.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
if ! "$venv/bin/python" -c "import ocpp, websockets" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "ocpp==2.1.0" "websockets==15.0.1"
fi
exec "$venv/bin/python" "$here/python_ocpp_cs.py" "${1:-9000}"
