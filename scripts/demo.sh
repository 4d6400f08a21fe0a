#!/usr/bin/env bash
# aisoc's main job on its embedded default: no server, no network.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" "supply-chain,parquet"
aisoc demo "$@"
