"""Static checks for the Prometheus alerting rules and the Grafana dashboard
shipped in examples/. Needs `promtool` (skips without it); does not start sluice."""
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROM_DIR = os.path.join(ROOT, "examples", "prometheus")
ALERTS = os.path.join(PROM_DIR, "alerts.yml")
ALERTS_TEST = os.path.join(PROM_DIR, "alerts_test.yml")
DASHBOARD = os.path.join(ROOT, "examples", "grafana", "sluice.json")

# Everything sluice exposes at /metrics (histograms by base name).
KNOWN_METRICS = {
    # counters
    "sluice_rows_received_total",
    "sluice_rows_accepted_total",
    "sluice_rows_rejected_total",
    "sluice_rows_duplicate_total",
    "sluice_http_requests_total",
    "sluice_writer_commits_total",
    "sluice_writer_commit_failures_total",
    "sluice_store_checkpoints_total",
    "sluice_store_checkpoint_failures_total",
    "sluice_auth_failures_total",
    "sluice_alert_deliveries_total",
    "sluice_alert_delivery_failures_total",
    "sluice_job_runs_total",
    "process_cpu_seconds_total",
    # histograms
    "sluice_http_request_duration_seconds",
    "sluice_batch_duration_seconds",
    "sluice_store_commit_duration_seconds",
    "sluice_store_query_duration_seconds",
    # summaries (_sum, _count)
    "sluice_job_run_duration_seconds",
    # gauges
    "sluice_dlq_depth",
    "sluice_writer_queue_depth",
    "sluice_writer_queue_capacity",
    "sluice_batches",
    "sluice_data_quality_ratio",
    "sluice_last_error_timestamp_seconds",
    "sluice_sentinel_last_run_timestamp_seconds",
    "sluice_alerts_firing",
    "sluice_store_up",
    "sluice_store_wal_bytes",
    "sluice_store_wal_limit_bytes",
    "sluice_scheduler_last_tick_timestamp_seconds",
    "sluice_scheduler_leader",
    "sluice_job_last_success_timestamp_seconds",
    "sluice_uptime_seconds",
    "sluice_build_info",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}
HISTOGRAMS = {"sluice_http_request_duration_seconds", "sluice_batch_duration_seconds",
              "sluice_store_commit_duration_seconds", "sluice_store_query_duration_seconds",
              "sluice_job_run_duration_seconds"}  # and the summaries: their _sum, _count

EXPECTED_ALERTS = {
    "SluiceDown", "SluiceStoreDown", "SluiceHighErrorRate", "SluiceVeryHighErrorRate",
    "SluiceIngestLatencyHigh", "SluiceDLQGrowing", "SluiceWriterQueueSaturated",
    "SluiceBatchesFailing", "SluiceSentinelNotRunning", "SluiceAlertDeliveryFailing",
    "SluiceCheckpointsFailing", "SluiceWALOverLimit", "SluiceSchedulerStalled", "SluiceJobFailing",
}

METRIC_RE = re.compile(r"\b(sluice_[a-z_]+|process_[a-z_]+)")
# Grafana template variables -> something promtool can parse.
GRAFANA_VARS = [
    ("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
    ("$datasource", "x"), ("$job", "sluice"), ("$instance", ".*"), ("$dataset", ".*"),
]


def promtool():
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if not path:
        pytest.skip("promtool not installed")
    return path


def run_promtool(*args, cwd=None):
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def metric_names(expr):
    names = set()
    for name in METRIC_RE.findall(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def read(path):
    with open(path) as f:
        return f.read()


def load_rules():
    """Minimal reader for alerts.yml (PyYAML is not a test dependency):
    one dict per `- alert:` with its expr (inline or block scalar), `for`,
    labels and annotations as flat key -> text."""
    rules = []
    for chunk in re.split(r"^\s*- alert:", read(ALERTS), flags=re.M)[1:]:
        lines = chunk.splitlines()
        rule = {"alert": lines[0].strip(), "fields": {}, "expr": ""}
        i = 1
        while i < len(lines):
            m = re.match(r"^(\s*)(\w+):\s*(.*)$", lines[i])
            i += 1
            if not m:
                continue
            indent, key, value = len(m.group(1)), m.group(2), m.group(3).strip()
            if value in ("|", ">", "|-", ">-"):
                block = []
                while i < len(lines) and (not lines[i].strip()
                                          or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                value = "\n".join(block).strip()
            if key == "expr":
                rule["expr"] = value
            else:
                rule["fields"][key] = value.strip("'\"")
        rules.append(rule)
    return rules


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def panel_exprs(dash):
    for p in all_panels(dash["panels"]):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p["title"], t["expr"]


# ----------------------------------------------------------------- promtool

def test_promtool_check_rules():
    r = run_promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_unit_tests():
    # Run from the rules dir: alerts_test.yml names alerts.yml relatively.
    r = run_promtool("test", "rules", os.path.basename(ALERTS_TEST), cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_unit_tests_cover_key_alerts_firing_and_quiet():
    fired, quiet = set(), set()
    for case in re.split(r"-\s*\{?\s*eval_time:", read(ALERTS_TEST))[1:]:
        name = re.search(r"alertname:\s*(\w+)", case).group(1)
        if re.search(r"exp_alerts:\s*\[\]", case):
            quiet.add(name)
        elif re.search(r"exp_alerts:\s*\n\s*- exp_labels:", case):
            fired.add(name)
    for name in ("SluiceDown", "SluiceHighErrorRate", "SluiceVeryHighErrorRate",
                 "SluiceIngestLatencyHigh", "SluiceDLQGrowing", "SluiceStoreDown",
                 "SluiceCheckpointsFailing", "SluiceWALOverLimit", "SluiceSchedulerStalled",
                 "SluiceJobFailing"):
        assert name in fired, f"{name} is never shown to fire"
        assert name in quiet, f"{name} is never shown to stay quiet"


# ----------------------------------------------------------------- alerts.yml

def test_alert_rules_shape():
    assert re.findall(r"^\s*- name:\s*(\S+)", read(ALERTS), flags=re.M) == ["sluice"]
    rules = load_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert EXPECTED_ALERTS <= set(names), EXPECTED_ALERTS - set(names)
    for r in rules:
        f = r["fields"]
        assert r["expr"], r["alert"]
        assert f.get("severity") in ("warning", "critical"), r["alert"]
        assert f.get("summary"), r["alert"]
        assert f.get("description"), r["alert"]
        assert re.fullmatch(r"\d+[smh]", f.get("for", "")), r["alert"]


def test_alert_rules_use_only_known_metrics():
    for r in load_rules():
        used = metric_names(r["expr"])
        unknown = used - KNOWN_METRICS
        assert not unknown, f"{r['alert']} uses unknown metrics {unknown}"
    used_all = set().union(*(metric_names(r["expr"]) for r in load_rules()))
    assert "sluice_dlq_depth" in used_all and "sluice_http_request_duration_seconds" in used_all


# ----------------------------------------------------------------- dashboard

def test_dashboard_model():
    dash = load_dashboard()
    assert dash["title"] and dash["uid"]
    assert 36 <= dash["schemaVersion"] <= 39
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ds_input = [i for i in dash.get("__inputs", []) if i["name"] == "DS_PROMETHEUS"]
    assert ds_input and ds_input[0]["pluginId"] == "prometheus"
    dataset = variables["dataset"]
    q = dataset["query"]["query"] if isinstance(dataset["query"], dict) else dataset["query"]
    assert q == "label_values(sluice_rows_received_total, dataset)"
    ids = [p["id"] for p in all_panels(dash["panels"])]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in all_panels(dash["panels"]):
        if p["type"] == "row":
            continue
        assert p.get("targets"), p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_dashboard_uses_only_known_metrics():
    exprs = list(panel_exprs(load_dashboard()))
    assert len(exprs) >= 20
    used = set()
    for title, expr in exprs:
        names = metric_names(expr)
        unknown = names - KNOWN_METRICS
        assert not unknown, f"panel {title!r} uses unknown metrics {unknown}: {expr}"
        used |= names
    # The dashboard covers every exported metric.
    assert used == KNOWN_METRICS, KNOWN_METRICS - used


def test_dashboard_exprs_parse(tmp_path):
    """Every panel query is valid PromQL (checked by promtool as recording rules)."""
    rules = []
    for i, (title, expr) in enumerate(panel_exprs(load_dashboard())):
        for var, value in GRAFANA_VARS:
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unsubstituted variable in {title!r}: {expr}"
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
    # JSON is valid YAML, so promtool reads it as a rule file.
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run_promtool("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
