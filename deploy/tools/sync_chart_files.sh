#!/usr/bin/env bash
# Copies the canonical dashboard and Prometheus rules into the Helm chart (Helm can only
# package files inside the chart folder). Run after editing either; the //deploy tests fail
# while the copies differ.
set -euo pipefail
D="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cp "$D/grafana/smolserve-dashboard.json" "$D/k8s/smolserve/files/smolserve-dashboard.json"
cp "$D/prometheus/rules.yaml" "$D/k8s/smolserve/files/prometheus-rules.yaml"
echo "synced deploy/k8s/smolserve/files/{smolserve-dashboard.json,prometheus-rules.yaml}"
