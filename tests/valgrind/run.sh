#!/usr/bin/env bash
# The ctest emulator of `./qpo.sh test-valgrind`: runs TEST [ARGS...] under valgrind memcheck,
# and every process it starts that is ours (the test programs, qpo, /bin/sh running qpo for
# system() and popen()) too. Each traced process writes its report to its own file,
# LOGS/TEST.PID.CHILD.log, because the tests send many workers' stderr to /dev/null and ignore
# the exit status of a SIGKILLed one: qpo.sh reads every log after the run. The test program's
# own errors also fail its test (exit 99).
#
# Not traced: PostgreSQL, node, chromium, promtool, openssl and the coreutils the tests run
# through the shell (third-party code: their memory is not ours to check, and memcheck would
# make the suite hours longer).
#
# usage: run.sh LOGS TEST [ARGS...]
set -euo pipefail
logs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
skip='*/postgres,*/initdb,*/pg_ctl,*/psql,*/pg_*,*/node,*/npm,*/npx,*/chromium*,*/promtool'
skip+=',*/openssl,*/runuser,*/rm,*/cp,*/mv,*/mkdir,*/sha256sum,*/cat,*/grep,*/sed,*/awk'
skip+=',*/wc,*/find,*/sort,*/head,*/tail,*/timeout,*/sleep,*/curl,*/tar,*/gzip,*/git'
export QPO_VALGRIND_RUN
QPO_VALGRIND_RUN="$(basename "$1").$$"
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=30 \
  --trace-children=yes --trace-children-skip="$skip" --suppressions="$here/valgrind.supp" \
  --log-file="$logs/%q{QPO_VALGRIND_RUN}.%p.log" "$@"
