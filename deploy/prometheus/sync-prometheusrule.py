#!/usr/bin/env python3
"""Keep deploy/k8s/prometheusrule.yaml identical to deploy/prometheus/alerts.yml.

The PrometheusRule is generated: a fixed header, then alerts.yml verbatim (comments
included) indented under `spec:`. One source of truth, and the check needs nothing
but the standard library.

    sync-prometheusrule.py --write   regenerate deploy/k8s/prometheusrule.yaml
    sync-prometheusrule.py [--check] exit 1 if it is out of date, if the parsed rule
                                     groups differ (when PyYAML is importable), or if a
                                     runbook_url anchor is missing from docs/runbook.md
"""
import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by
#   python3 deploy/prometheus/sync-prometheusrule.py --write
# Do not edit here: edit alerts.yml (and its promtool tests) and regenerate.
#
# The Prometheus Operator only loads rules matching its Prometheus' ruleSelector;
# kube-prometheus-stack, for example, wants a `release: <helm release>` label,
# which you can add with a kustomize `labels:` entry or a patch.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: driftwatch
  labels:
    app.kubernetes.io/name: driftwatch
    app.kubernetes.io/component: alerting
spec:
"""


def render(alerts_text: str) -> str:
    lines = []
    for line in alerts_text.splitlines():
        lines.append("  " + line if line.strip() else "")
    return HEADER + "\n".join(lines) + "\n"


def check_semantics(alerts_text: str, rule_text: str) -> list:
    try:
        import yaml  # PyYAML; optional, the text comparison already covers the rest
    except ImportError:
        print("note: PyYAML not importable, parsed comparison skipped", file=sys.stderr)
        return []
    alerts = yaml.safe_load(alerts_text)
    rule = yaml.safe_load(rule_text)
    errors = []
    if rule.get("kind") != "PrometheusRule":
        errors.append(f"{RULE.relative_to(ROOT)}: kind is {rule.get('kind')!r}, not PrometheusRule")
    if alerts.get("groups") != (rule.get("spec") or {}).get("groups"):
        errors.append(f"{RULE.relative_to(ROOT)}: spec.groups differs from the groups of {ALERTS.relative_to(ROOT)}")
    return errors


def check_runbook(alerts_text: str) -> list:
    anchors = set(re.findall(r'runbook_url:\s*["\']?docs/runbook\.md#([A-Za-z0-9_-]+)', alerts_text))
    alert_count = len(re.findall(r"^\s*-\s*alert:", alerts_text, flags=re.M))
    errors = []
    if len(anchors) != alert_count:
        errors.append(f"{ALERTS.relative_to(ROOT)}: {alert_count} alerts but {len(anchors)} distinct runbook anchors")
    runbook = RUNBOOK.read_text(encoding="utf-8") if RUNBOOK.exists() else ""
    # An explicit <a id="..."> keeps the anchor stable whatever renderer is used.
    present = set(re.findall(r'<a id="([^"]+)"', runbook))
    for anchor in sorted(anchors - present):
        errors.append(f'{RUNBOOK.relative_to(ROOT)}: no <a id="{anchor}"></a> for a runbook_url in alerts.yml')
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate the PrometheusRule")
    mode.add_argument("--check", action="store_true", help="only check (the default)")
    args = parser.parse_args()

    alerts_text = ALERTS.read_text(encoding="utf-8")
    expected = render(alerts_text)
    if args.write:
        RULE.write_text(expected, encoding="utf-8")
        print(f"wrote {RULE.relative_to(ROOT)}")
        return 0

    errors = []
    actual = RULE.read_text(encoding="utf-8") if RULE.exists() else ""
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(keepends=True), expected.splitlines(keepends=True),
            fromfile=str(RULE.relative_to(ROOT)), tofile="generated from alerts.yml")
        sys.stderr.writelines(diff)
        errors.append(f"{RULE.relative_to(ROOT)} is out of date: run {Path(__file__).relative_to(ROOT)} --write")
    else:
        errors += check_semantics(alerts_text, actual)
    errors += check_runbook(alerts_text)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if not errors:
        print("prometheusrule.yaml matches alerts.yml; every runbook anchor exists")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
