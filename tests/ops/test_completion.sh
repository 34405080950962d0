#!/usr/bin/env bash
# qpo --version and qpo completion bash, as a user's shell sees them:
#   test_completion.sh QPO_BINARY SOURCE_DIR
# The version is cmake/version.cmake's for this checkout (project version + a commit of it); the
# completion script, sourced into bash, completes a command name, a subcommand and a flag
# (compgen through the registered function), and knows every command `qpo help` lists.
set -euo pipefail
qpo=$1 src=$2
fails=0 passes=0
check() { # check NAME EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then passes=$((passes + 1)); else
        echo "FAIL $1: expected [$2], got [$3]" >&2; fails=$((fails + 1)); fi
}

# The binary may predate the last commit (ctest does not rebuild), so its git part must name a
# commit of this repository rather than equal today's describe.
want=$(cmake -DQPO_SOURCE_DIR="$src" -P "$src/cmake/version.cmake")
got=$("$qpo" --version)
check "qpo --version: project version" "qpo ${want%%+*}" "${got%%+*}"
if [[ $want =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then passes=$((passes + 1)); else
    echo "FAIL version [$want] does not start with x.y.z" >&2; fails=$((fails + 1)); fi
if [[ $want == *+* ]]; then
    describe=${got#*+}
    describe=${describe%-dirty}
    if [[ $got == *+* ]] && git -C "$src" rev-parse -q --verify "$describe^{commit}" >/dev/null; then
        passes=$((passes + 1))
    else
        echo "FAIL qpo --version [$got] names no commit of $src" >&2; fails=$((fails + 1))
    fi
fi

# shellcheck source=/dev/null
source <("$qpo" completion bash)
check "completion registered" "complete -o default -F _qpo qpo" "$(complete -p qpo)"
complete_line() { # the words on the line, the last being completed
    COMP_WORDS=("$qpo" "$@")
    COMP_CWORD=$#
    COMPREPLY=()
    _qpo
    echo "${COMPREPLY[*]}"
}
check "command" "demo" "$(complete_line de)"
check "flag" "--out" "$(complete_line demo --ou)"
check "subcommand" "fetch" "$(complete_line data fe)"
check "subcommand flag" "--from" "$(complete_line data fetch svamp --fr)"
check "help topic" "worker" "$(complete_line help wor)"
# Every command of the table, as `qpo help` lists them, completes.
listed=$("$qpo" help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{if (n++) exit}' |
         sort | tr '\n' ' ')
offered=$(complete_line "" | tr ' ' '\n' | grep -v '^--' | sort | tr '\n' ' ')
check "all commands" "$listed" "$offered"

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
