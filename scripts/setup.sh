#!/usr/bin/env bash
# Set up datadiet in ./.venv, with the embedded Fashion-MNIST dataset.
# Idempotent: a second run only re-checks (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
FASHION_DIR=/usr/share/datasets/fashion-mnist

# 1. The embedded default dataset: Debian's dataset-fashion-mnist (~30 MB).
if [ ! -d "$FASHION_DIR" ] && [ -z "${DATADIET_DATA:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing dataset-fashion-mnist with apt-get" >&2
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: no apt-get here; get Fashion-MNIST with '.venv/bin/datadiet download fashion-mnist --data-root DIR'" \
         "and set DATADIET_DATA=DIR" >&2
  fi
fi

# 2. A virtual environment.
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# 3. torch: datadiet accepts any torch>=2.1.  If pip can see a local CPU wheel of
#    $DATADIET_TORCH (default 2.13.0, e.g. through find-links), take it instead of
#    letting the resolver pull a multi-GB CUDA build.  Elsewhere pip picks as usual.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  local_torch="torch==${DATADIET_TORCH:-2.13.0}"
  if "${PIP[@]}" download --no-index --no-deps -d "$(mktemp -d)" "$local_torch" >/dev/null 2>&1; then
    echo "setup: installing $local_torch from a local wheel" >&2
    "${PIP[@]}" install "$local_torch"
  fi
fi

# 4. datadiet itself, editable, with the test tools and the Ray extra (its test runs a local cluster).
"${PIP[@]}" install -e ".[test,ray]"
echo "setup: ready ($(.venv/bin/python -c 'import torch, datadiet; print("datadiet", datadiet.__version__, "torch", torch.__version__)'))" >&2
