# Sourced by the set-up scripts: sets $python to a Python 3.11 (PYTHON, python3.11 or python3), or exits.
python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "$(basename "$0"): Python 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
