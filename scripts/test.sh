#!/usr/bin/env bash
# Runs the whole test suite, first installing what the tests talk to: the real peers
# (util-linux `logger`, rsyslog, the OpenTelemetry Python SDK, Chromium to open the
# compliance report, the moto S3 server, the Prometheus text parser) and libfaketime
# (`faketime`, which moves the daemon's clock in the retention tests), then runs
# `cargo test`. Safe to run again; it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v logger >/dev/null 2>&1 || missing+=(bsdutils)
command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/common/peers/requirements.txt
export VELLUM_TEST_PYTHON="$PWD/$venv/bin/python"

cargo test --locked --all-targets "$@"
