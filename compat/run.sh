#!/usr/bin/env bash
# Runs the real-client compatibility suite (aepp from PyPI, and Adobe's tutorial curl calls)
# against a freshly started `lakeport serve`. CI calls this after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check aepp==0.6.0 duckdb
port=${COMPAT_PORT:-18181}
source compat/serve.sh
start_lakeport "$port" compat-token
export LAKEPORT_URL="http://127.0.0.1:$port" LAKEPORT_TOKEN=compat-token
echo "== aepp $(python3 -c 'import aepp; print(aepp.__version__)')"
python3 compat/aepp_flow.py
echo "== curl flows of Adobe's tutorials"
bash compat/curl_flow.sh
