#!/usr/bin/env bash
# The whole test suite: installs what it needs into .venv, then runs pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test
# The demo's report test renders the page in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test.sh: could not install chromium; the report screenshot test will fail" >&2
fi
python -m pytest "$@"
