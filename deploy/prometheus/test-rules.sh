#!/usr/bin/env bash
# Check and unit-test driftwatch's Prometheus rules and scrape config.
#
#   deploy/prometheus/test-rules.sh
#
# Installs promtool (Debian's `prometheus` package ships it) when it is missing,
# then runs `promtool check config`, `promtool check rules`, `promtool test rules`
# and the PrometheusRule/runbook consistency check. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

install_promtool() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "promtool missing and not root (no sudo)" >&2; exit 1; }
        sudo=(sudo)
    fi
    echo "promtool not found: installing Debian's prometheus package" >&2
    # The package would start a Prometheus server (and, through Recommends, a node
    # exporter) on install. Only promtool is wanted: skip Recommends, and when no
    # policy-rc.d is in place, add one for the duration that forbids starting services.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [ "$rc" -eq 0 ]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends prometheus || rc=$?
    fi
    if [ "$added_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    # On a host running systemd the unit is still enabled for the next boot; make sure
    # no server is left running or starting later.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    [ "$rc" -eq 0 ] || { echo "installing prometheus failed ($rc)" >&2; exit "$rc"; }
}

command -v promtool >/dev/null || install_promtool
promtool --version | head -n 1

cd "$here"
echo "== promtool check config prometheus.yml"
promtool check config prometheus.yml
echo "== promtool check rules alerts.yml"
promtool check rules alerts.yml
echo "== promtool test rules alerts_test.yml"
promtool test rules alerts_test.yml

echo "== deploy/k8s/prometheusrule.yaml against alerts.yml"
python3 "$here/sync-prometheusrule.py" --check

echo "test-rules: all checks passed"
