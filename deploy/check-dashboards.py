#!/usr/bin/env python3
"""Static checks of the Grafana dashboards in dashboards/ (standard library only).

    python3 deploy/check-dashboards.py [--json] [--promtool] [FILE.json ...]

Fails (exit 1) when
  - a file is not valid JSON, or a dashboard has no uid or shares its uid or title;
  - there is no `datasource` template variable of type datasource for prometheus;
  - any panel (rows excepted when they have none), target or query variable has a
    datasource other than {"type": "prometheus", "uid": "${datasource}"}, or any
    datasource anywhere is hard-coded (the built-in Grafana annotation excepted);
  - panel ids repeat within a dashboard, or a panel has no gridPos;
  - an expression or link uses a $variable the dashboard does not define.

It prints every PromQL expression found, one per line as
`uid<TAB>panel<TAB>refId<TAB>expr` (or a JSON list with --json, for tests that run
the queries against a real Prometheus). --promtool additionally checks the syntax of
every expression, variables replaced by sample values, with `promtool check rules`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WANTED_DS = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_ANNOTATION_DS = {"type": "grafana", "uid": "-- Grafana --"}
# $var, ${var}, ${var:format}, [[var]]; Grafana's own variables start with "__".
VAR_RE = re.compile(r"\$\{([A-Za-z0-9_.]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]")


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        # Collapsed rows keep their panels inside.
        yield from walk_panels(panel.get("panels"))


def variables_used(text):
    for m in VAR_RE.finditer(text or ""):
        name = m.group(1) or m.group(2) or m.group(3)
        if name and not name.startswith("__"):
            yield name


def find_datasources(node, path="$"):
    """Yield (path, value) for every "datasource" key anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield path, value
            yield from find_datasources(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from find_datasources(value, f"{path}[{i}]")


def check_dashboard(path, dash, errors, exprs):
    uid = dash.get("uid")
    where = f"{path.name} ({uid})"
    if not uid:
        errors.append(f"{path.name}: no uid")
    templating = (dash.get("templating") or {}).get("list") or []
    defined = {v.get("name") for v in templating}
    ds_vars = [v for v in templating if v.get("name") == "datasource"]
    if not ds_vars or ds_vars[0].get("type") != "datasource" or ds_vars[0].get("query") != "prometheus":
        errors.append(f"{where}: needs a template variable `datasource` of type datasource, query prometheus")

    # Every datasource reference in the file, wherever it sits.
    for jpath, value in find_datasources(dash):
        if value == WANTED_DS:
            continue
        if value == BUILTIN_ANNOTATION_DS and jpath.startswith("$.annotations.list["):
            continue
        errors.append(f"{where}: {jpath} has datasource {json.dumps(value)}, want {json.dumps(WANTED_DS)}")

    for var in templating:
        if var.get("type") == "query" and var.get("datasource") != WANTED_DS:
            errors.append(f"{where}: variable {var.get('name')} does not use ${{datasource}}")
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        for name in variables_used(query if isinstance(query, str) else ""):
            if name not in defined:
                errors.append(f"{where}: variable {var.get('name')} uses undefined ${name}")

    for link in dash.get("links") or []:
        for name in variables_used(link.get("url")):
            if name not in defined:
                errors.append(f"{where}: dashboard link {link.get('title')!r} uses undefined ${name}")

    seen_ids = set()
    for panel in walk_panels(dash.get("panels")):
        title = panel.get("title") or f"panel {panel.get('id')}"
        pid = panel.get("id")
        if pid in seen_ids:
            errors.append(f"{where}: panel id {pid} repeats ({title})")
        seen_ids.add(pid)
        if "gridPos" not in panel:
            errors.append(f"{where}: panel {title!r} has no gridPos")
        is_row = panel.get("type") == "row"
        if not is_row and panel.get("datasource") != WANTED_DS:
            errors.append(f"{where}: panel {title!r} datasource is {json.dumps(panel.get('datasource'))}")
        if panel.get("repeat") and panel["repeat"] not in defined:
            errors.append(f"{where}: panel {title!r} repeats by undefined variable {panel['repeat']}")
        texts = [title]
        texts += [l.get("url", "") for l in panel.get("links") or []]
        defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
        texts += [l.get("url", "") + " " + l.get("title", "") for l in defaults.get("links") or []]
        targets = panel.get("targets") or []
        if not is_row and not targets:
            errors.append(f"{where}: panel {title!r} has no targets")
        for target in targets:
            ref = target.get("refId", "?")
            if target.get("datasource") != WANTED_DS:
                errors.append(f"{where}: panel {title!r} target {ref} datasource is "
                              f"{json.dumps(target.get('datasource'))}")
            expr = target.get("expr")
            if not expr:
                errors.append(f"{where}: panel {title!r} target {ref} has no expr")
                continue
            texts.append(expr)
            exprs.append({"dashboard": uid, "panel": title, "refId": ref, "expr": expr,
                          "instant": bool(target.get("instant"))})
        for text in texts:
            for name in variables_used(text):
                if name not in defined:
                    errors.append(f"{where}: panel {title!r} uses undefined ${name}")


def sample_expr(expr):
    """Replace Grafana variables by values that keep the PromQL parseable."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return VAR_RE.sub("sample", expr)


def promtool_check(exprs, errors):
    promtool = shutil.which("promtool")
    if not promtool:
        errors.append("--promtool given but promtool is not on PATH")
        return
    # A rule file of recording rules is the one thing promtool parses offline.
    lines = ["groups:", "  - name: dashboard-expressions", "    rules:"]
    for i, e in enumerate(exprs):
        lines.append(f"      - record: dashboard:expr_{i}")
        lines.append(f"        expr: {json.dumps(sample_expr(e['expr']))}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
        name = fh.name
    try:
        run = subprocess.run([promtool, "check", "rules", name], capture_output=True, text=True)
        if run.returncode != 0:
            errors.append("promtool rejected dashboard expressions:\n" + run.stdout + run.stderr)
        else:
            print(f"promtool: {len(exprs)} expressions parse", file=sys.stderr)
    finally:
        os.unlink(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--json", action="store_true", help="print the expressions as a JSON list")
    parser.add_argument("--promtool", action="store_true", help="check PromQL syntax with promtool")
    args = parser.parse_args()
    files = args.files or sorted((ROOT / "dashboards").glob("*.json"))
    if not files:
        print("no dashboards found", file=sys.stderr)
        return 1

    errors, exprs, uids, titles = [], [], {}, {}
    for path in files:
        try:
            dash = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        uid, title = dash.get("uid"), dash.get("title")
        if uid in uids:
            errors.append(f"{path.name}: uid {uid!r} also used by {uids[uid]}")
        uids.setdefault(uid, path.name)
        if title in titles:
            errors.append(f"{path.name}: title {title!r} also used by {titles[title]}")
        titles.setdefault(title, path.name)
        check_dashboard(path, dash, errors, exprs)

    if args.promtool and exprs:
        promtool_check(exprs, errors)
    if args.json:
        print(json.dumps(exprs, indent=2, ensure_ascii=False))
    else:
        for e in exprs:
            print(f"{e['dashboard']}\t{e['panel']}\t{e['refId']}\t{e['expr']}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"{len(files)} dashboards, {len(exprs)} expressions, {len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
