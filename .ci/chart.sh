#!/usr/bin/env bash
# Checks the Helm chart: `helm lint --strict` and `helm template` in both
# modes (single: the embedded defaults on a volume; replicated: PostgreSQL
# and S3), then `kubernetes-validate --strict` on what was rendered, and a
# replicated render missing its database must fail with a message.
# Needs .ci/tools.sh's helm and kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=helm/mediastore
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export HELM_CACHE_HOME="$out/helm" HELM_CONFIG_HOME="$out/helm" HELM_DATA_HOME="$out/helm"
helm=.tools/helm
for mode in single replicated; do
  values="$chart/ci/$mode-values.yaml"
  $helm lint --strict "$chart" -f "$values"
  $helm template ci "$chart" --kube-version 1.33.0 -f "$values" > "$out/$mode.yaml"
  .venv-tools/bin/kubernetes-validate --strict -k 1.33.0 "$out/$mode.yaml"
done
# The defaults alone render the single mode.
$helm template ci "$chart" --kube-version 1.33.0 > "$out/defaults.yaml"
.venv-tools/bin/kubernetes-validate --strict -k 1.33.0 "$out/defaults.yaml"
if $helm template ci "$chart" --set mode=replicated > /dev/null 2> "$out/err"; then
  echo "a replicated render without a database should fail" >&2
  exit 1
fi
grep -q "database.existingSecret" "$out/err"
echo "chart: lint, render and validation passed in both modes"
