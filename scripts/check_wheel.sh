#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment and run `impact simulate`,
# `impact validate`, `impact panel` and `impact derive` from it, outside the source checkout: the
# data contract must come from the installed package. Usage: scripts/check_wheel.sh DEV_PYTHON [WORK_DIR]
# The fresh environment borrows the dev environment's third-party packages through a .pth file
# (not its editable `impact`, whose finder a .pth path line does not run), so nothing is
# downloaded a second time.
set -euo pipefail
dev_python="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mkdir -p "${2:-$root/build/wheel-check}" && cd "${2:-$root/build/wheel-check}" && pwd)"
rm -rf "$work/dist" "$work/venv" "$work/data" "$work/run" "$work/extracts" "$work/derived"
isolation=--no-build-isolation
"$dev_python" -c "import setuptools" 2>/dev/null || isolation=
"$dev_python" -m pip wheel --quiet --no-deps $isolation -w "$work/dist" "$root"
"$("$root/scripts/python312.sh")" -m venv "$work/venv"
deps="$("$dev_python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
site="$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
echo "$deps" > "$site/_impact_dev_dependencies.pth"
"$work/venv/bin/python" -m pip install --quiet --no-deps "$work"/dist/impact-*.whl
mkdir -p "$work/run" && cd "$work/run"   # no source checkout on the path
"$work/venv/bin/python" - "$work/venv" <<'PY'
import sys
from pathlib import Path

import impact
from impact import spec

venv = Path(sys.argv[1]).resolve()
assert venv in Path(impact.__file__).resolve().parents, impact.__file__
assert venv in spec.spec_dir().resolve().parents, spec.spec_dir()
assert (spec.spec_dir() / "README.md").is_file() and spec.load().tables["persons"].key
print(f"installed impact {impact.__version__} with its data contract in {spec.spec_dir()}")
PY
"$work/venv/bin/impact" simulate --scale small --seed 1 --out "$work/data"
"$work/venv/bin/impact" validate "$work/data"
"$work/venv/bin/impact" panel --data "$work/data" --out "$work/run/panel.parquet"
test -s "$work/run/panel.parquet"
# impact derive from raw extracts (its register catalogue, data_spec/registers/, is package data too)
"$work/venv/bin/python" -c "import sys; from impact import io; from impact.derive.synthetic import \
write_extracts; write_extracts(io.read_registers(sys.argv[1]), sys.argv[2])" "$work/data" "$work/extracts"
"$work/venv/bin/impact" derive --extracts "$work/extracts" --out "$work/derived"
"$work/venv/bin/impact" validate "$work/derived"
echo "wheel check passed"
