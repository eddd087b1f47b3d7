#!/usr/bin/env bash
# Creates the Python virtual environment that runs pyas2_peer.py.
#
#   tests/interop/setup-venv.sh [VENV_DIR]     (default: target/interop-venv)
#
# Idempotent: a venv that already imports pyas2lib is left alone. Packages come
# from PyPI only (pip, requirements.txt); nothing else is downloaded.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/interop-venv}"
python="${PYTHON:-python3}"

say() { printf 'setup-venv: %s\n' "$*"; }

# The import check also proves the oscrypto patch is in place: unpatched,
# importing pyas2lib fails on OpenSSL >= 3.0.10.
check() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md
import pyas2lib  # noqa: F401  (imports oscrypto, which probes libcrypto)
assert md.version("pyas2lib") == "1.4.4"
PY
}

if [ -x "$venv/bin/python" ] && check; then
  say "$venv is ready (pyas2lib 1.4.4 imports); nothing to do"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi

say "installing $here/requirements.txt"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt"

# oscrypto 1.3.0 finds the libcrypto version with the regex \d\.\d\.\d, which
# misses a two-digit patch number ("OpenSSL 3.0.19"), so importing it raises
# LibraryNotFoundError. Upstream fixed this after 1.3.0 but never released it;
# widen the same regexes the same way. Re-running finds nothing left to patch.
say "patching oscrypto's libcrypto version detection"
"$venv/bin/python" - <<'PY'
import os, sysconfig
base = os.path.join(sysconfig.get_paths()["purelib"], "oscrypto", "_openssl")
fixes = [
    (r"'\\b(\\d\\.\\d\\.\\d[a-z]*)\\b'", r"'\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b'"),
    (r"'(?<=LibreSSL )(\\d\\.\\d(\\.\\d)?)\\b'", r"'(?<=LibreSSL )(\\d+\\.\\d+(\\.\\d+)?)\\b'"),
]
for name in ("_libcrypto_cffi.py", "_libcrypto_ctypes.py"):
    path = os.path.join(base, name)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = text
    for old, fixed in fixes:
        new = new.replace(old, fixed)
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
        print(f"setup-venv:   patched {path}")
    elif r"\\d+\\.\\d+\\.\\d+" in text:
        print(f"setup-venv:   {path} already patched")
    else:
        raise SystemExit(f"setup-venv: {path}: version regex not found; oscrypto changed?")
PY

if check; then
  say "$venv is ready"
else
  say "error: pyas2lib still does not import; the traceback follows" >&2
  "$venv/bin/python" -c "import pyas2lib" >&2 || true
  exit 1
fi
