#!/usr/bin/env bash
# A throwaway Elasticsearch node for tests and local poking (single node, 127.0.0.1, security off).
#   scripts/es-node.sh start [--version V]   # fetches the distribution once (mvn), prints the URL
#   scripts/es-node.sh status                # exit 0 healthy, 1 unhealthy, 3 not running
#   scripts/es-node.sh stop
# State (pid, url) lives in ${AISOC_CACHE:-~/.cache/aisoc}/elasticsearch/run/. Use the URL with the
# test suite via: AISOC_TEST_ES_URL="$(cat "${AISOC_CACHE:-$HOME/.cache/aisoc}/elasticsearch/run/es-node.url")"
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
exec python -m aisoc.testing.es_node "$@"
