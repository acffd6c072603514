#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or fail with a clear message.
# Tries: $PYTHON, python3.13/python3.12 on PATH, pyenv's installed 3.12+/3.13+, python3.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
for cand in "${PYTHON:-}" python3.12 python3.13; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && ok "$cand" && { command -v "$cand"; exit 0; }
done
root="${PYENV_ROOT:-$HOME/.pyenv}"
for dir in $(ls -d "$root"/versions/3.12* "$root"/versions/3.13* 2>/dev/null | sort -V); do
  [ -x "$dir/bin/python" ] && ok "$dir/bin/python" && { echo "$dir/bin/python"; exit 0; }
done
command -v python3 >/dev/null 2>&1 && ok python3 && { command -v python3; exit 0; }
echo "impact needs Python >= 3.12; none found (install one, or set PYTHON=/path/to/python3.12)" >&2
exit 1
