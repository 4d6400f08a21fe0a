#!/usr/bin/env bash
# The whole test suite: installs what it needs into .venv, then runs pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test
python -m pytest "$@"
