#!/usr/bin/env bash
# Creates .venv (if absent) and installs alphaforge with its data, dev and pg extras, and the
# foundation-model extras (kronos, toto, chronos).
# torch==2.13.0 (CPU) is installed only where no torch is importable; an existing torch (e.g. a
# CUDA build on a GPU machine) is kept, since pyproject only asks for torch>=2.4.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[data,dev,pg]"
# Foundation-model extras (ALPHAFORGE_NO_FOUNDATION=1 skips them). toto-ts pins torch==2.7.0
# and gluonts pins pandas<3: both go in with --no-deps; the "toto" extra holds what they import.
if [ "${ALPHAFORGE_NO_FOUNDATION:-0}" != "1" ]; then
  .venv/bin/python -m pip install -q -e ".[kronos,kronos-reference,toto,chronos]"
  .venv/bin/python -m pip install -q --no-deps "toto-ts==0.2.0" "gluonts==0.17.0"
fi
