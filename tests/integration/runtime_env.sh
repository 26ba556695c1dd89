#!/usr/bin/env bash
# qplug::restart_with_sleeping_idle_threads: sets the thread-library variables it manages that the
# environment lacks, restarts the program once so the libraries read them, and leaves values the
# environment already holds alone (then it must not restart).
#
# Usage: runtime_env.sh <runtime_env_probe binary>
set -uo pipefail
probe=$1
failures=0

expect() {  # expect <description> <expected output> <env args...>
  local what=$1 want=$2; shift 2
  local got
  got=$(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT "$@" "$probe")
  if [ "$got" != "$want" ]; then
    printf 'FAIL: %s\n--- expected\n%s\n--- got\n%s\n' "$what" "$want" "$got"
    failures=$((failures + 1))
  fi
}

expect "none set: all three set, one restart" "start
start
OMP_WAIT_POLICY=passive
GOMP_SPINCOUNT=30000
OPENBLAS_THREAD_TIMEOUT=4"

expect "one set: it is kept, the others set, one restart" "start
start
OMP_WAIT_POLICY=active
GOMP_SPINCOUNT=30000
OPENBLAS_THREAD_TIMEOUT=4" OMP_WAIT_POLICY=active

expect "all set: kept, no restart" "start
OMP_WAIT_POLICY=active
GOMP_SPINCOUNT=5
OPENBLAS_THREAD_TIMEOUT=1" OMP_WAIT_POLICY=active GOMP_SPINCOUNT=5 OPENBLAS_THREAD_TIMEOUT=1

[ "$failures" -eq 0 ] && echo "runtime_env: 3 checks passed"
exit "$failures"
