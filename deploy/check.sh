#!/usr/bin/env sh
# Checks the deployment files as far as a machine without Docker or Kubernetes allows:
# every YAML and JSON file parses, Kubernetes documents have apiVersion/kind/metadata.name and
# validate strictly against the Kubernetes API schemas (kubernetes-validate, offline; unknown
# fields fail), the Compose file has its services, and promtool checks and unit-tests the
# alert rules. Installs promtool (Debian package `prometheus`) and kubernetes-validate (PyPI)
# when they are missing.
set -eu
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    python3 -m pip install --quiet pyyaml
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    python3 -m pip install --quiet 'kubernetes-validate==1.37.0'
fi

python3 - <<'PY'
import json, pathlib, sys, yaml

failed = False
def fail(msg):
    global failed
    failed = True
    print("FAIL", msg)

for path in sorted(pathlib.Path(".").rglob("*")):
    if path.suffix in (".yml", ".yaml"):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{path}: {e}"); continue
        if path.parts[0] == "k8s" and path.name != "kustomization.yaml":
            for d in docs:
                for key in ("apiVersion", "kind"):
                    if key not in d: fail(f"{path}: a document has no {key}")
                if not d.get("metadata", {}).get("name"): fail(f"{path}: a document has no metadata.name")
        print("ok  ", path)
    elif path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except ValueError as e:
            fail(f"{path}: {e}"); continue
        print("ok  ", path)

compose = yaml.safe_load(pathlib.Path("docker-compose.yml").read_text())
for svc in ("api", "worker", "postgres", "redis", "jaeger", "prometheus", "grafana"):
    if svc not in compose["services"]: fail(f"docker-compose.yml: no service {svc}")
worker = compose["services"].get("worker", {})
if "container_name" in worker or "ports" in worker:
    fail("docker-compose.yml: worker must have no container_name or ports, or --scale worker=N fails")
kust = yaml.safe_load(pathlib.Path("k8s/kustomization.yaml").read_text())
for res in kust["resources"]:
    if not pathlib.Path("k8s", res).exists(): fail(f"k8s/kustomization.yaml: {res} is missing")
dash = json.loads(pathlib.Path("grafana/dashboards/orchestrator.json").read_text())
if not dash.get("panels"): fail("grafana dashboard has no panels")
sys.exit(1 if failed else 0)
PY

# The oldest Kubernetes minor still commonly run; the manifests use only GA APIs.
kubernetes-validate --strict --kubernetes-version 1.30.0 $(ls k8s/*.yaml | grep -v kustomization)
promtool check rules prometheus/alerts.yml
# The scrape config names its rule file by its path inside the container: check a copy that
# points at the file here.
tmp=$(mktemp -d)
sed "s#/etc/prometheus/alerts.yml#$(pwd)/prometheus/alerts.yml#" prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
rm -rf "$tmp"
(cd prometheus && promtool test rules alerts.test.yml)
echo "deploy: all checks passed"
