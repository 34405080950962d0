#!/usr/bin/env bash
# docker/deploy-check.sh QPO_BINARY: what CI can check of the deployment without a Docker
# engine (./qpo.sh deploy-check runs it; about 10 s):
#  - compose: docker-compose (Debian's) resolves compose.yaml for both profiles, each profile
#    holds the services docker/README.md says, and the file itself holds no secret;
#  - Dockerfiles: dockerfile-utils (tests/deploy/dockerfile-lint, pinned) reports nothing, and
#    each image ends as a non-root user with a healthcheck and the version label;
#  - scripts: shellcheck on the entrypoint and the install scripts, and the entrypoint run
#    with a stand-in qpo: secrets from *_FILE, the workers' --name, the data folders;
#  - the runtime package list (scripts/install-deps.sh runtime) installs here and provides
#    every shared library the built binary loads.
# `A && pass || fail` is safe here: pass only echoes. The version label is matched literally.
# shellcheck disable=SC2015,SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
passes=0 fails=0
pass() { passes=$((passes + 1)); echo "ok   $*"; }
fail() { fails=$((fails + 1)); echo "FAIL $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- compose ---------------------------------------------------------------------------
services_of() { # services_of CONFIG_YAML PROFILE|-  -> sorted names
  python3 -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
want = sys.argv[2]
for name, s in sorted(d["services"].items()):
    p = s.get("profiles") or []
    if (want == "-" and not p) or want in p:
        print(name)' "$1" "$2" | tr '\n' ' '
}
for profile in sim vllm; do
  if (cd docker && QPO_ENV_FILE=env.example docker-compose -f compose.yaml --profile "$profile" \
        config >"$tmp/$profile.yaml" 2>"$tmp/$profile.err"); then
    pass "docker-compose config --profile $profile"
  else
    fail "docker-compose config --profile $profile: $(cat "$tmp/$profile.err")"
    continue
  fi
  got=$(services_of "$tmp/$profile.yaml" "$profile")
  want="cpu-trainer sim-llm "
  [[ $profile == vllm ]] && want="gpu-trainer vllm "
  [[ $got == "$want" ]] && pass "profile $profile: $got" || fail "profile $profile has [$got], want [$want]"
done
got=$(services_of "$tmp/sim.yaml" -)
want="data migrate postgres reward-worker scheduler "
[[ $got == "$want" ]] && pass "always on: $got" || fail "services without a profile: [$got], want [$want]"
# Least privilege: only migrate (and the images not ours) log in as the schema's owner.
owners=$(python3 -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for name, s in sorted(d["services"].items()):
    env = s.get("environment") or {}
    if name not in ("postgres", "migrate", "vllm") and not env.get("QPO_DB_ROLE"):
        print(name)' "$tmp/sim.yaml" | tr '\n' ' ')
[[ -z $owners ]] && pass "every qpo service but migrate has a QPO_DB_ROLE login" ||
  fail "services logging in as the schema owner: [$owners]: set QPO_DB_ROLE (docs/roles.md)"
if grep -nEi '(password|api_key|token|secret)[a-z_]*: *[^$ ]' docker/compose.yaml; then
  fail "docker/compose.yaml holds a secret's value (above): secrets go in the env file"
else
  pass "no secret in docker/compose.yaml"
fi

# --- Dockerfiles -----------------------------------------------------------------------
lint=tests/deploy/dockerfile-lint/node_modules/.bin/dockerfile-utils
for df in docker/*.Dockerfile; do
  out=$("$lint" lint --json "$df" 2>&1) || true
  [[ $out == "[]" ]] && pass "dockerfile-utils lint $df" || fail "dockerfile-utils lint $df: $out"
  last=$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END{printf "%s", stage}' "$df")
  grep -qE '^USER +[a-z]' <<<"$last" && ! grep -qE '^USER +(root|0)\b' <<<"$last" &&
    pass "$df: runs as a non-root user" || fail "$df: the last stage needs USER (not root)"
  grep -q '^HEALTHCHECK ' <<<"$last" && pass "$df: healthcheck" || fail "$df: no HEALTHCHECK"
  grep -q 'org.opencontainers.image.version="${QPO_VERSION}"' <<<"$last" &&
    grep -q 'check-version.sh' "$df" && pass "$df: version label checked against qpo --version" ||
    fail "$df: the version label must come from QPO_VERSION, checked by docker/check-version.sh"
  if grep -nEi '^(ENV|ARG) .*(password|api_key|token|secret)' "$df"; then
    fail "$df: a secret in ENV/ARG ends up in the image"
  else
    pass "$df: no secret in ENV/ARG"
  fi
done

# --- scripts ---------------------------------------------------------------------------
if shellcheck -s sh docker/entrypoint.sh docker/check-version.sh docker/postgres-init/*.sh &&
   shellcheck scripts/install-deps.sh docker/deploy-check.sh qpo.sh; then
  pass "shellcheck"
else
  fail "shellcheck (above)"
fi
mkdir -p "$tmp/bin" "$tmp/cache"
cat >"$tmp/bin/qpo" <<'STUB'
#!/bin/sh
# A stand-in for qpo: shows what the entrypoint hands over.
echo "args: $*"
echo "PGPASSWORD=${PGPASSWORD:-}"
echo "PGUSER=${PGUSER:-} PGOPTIONS=${PGOPTIONS:-}"
echo "QPO_BPE_DIR=$QPO_BPE_DIR QPO_PROMPTS_DIR=$QPO_PROMPTS_DIR"
STUB
chmod +x "$tmp/bin/qpo"
echo "s3cret" >"$tmp/pw"
out=$(env -i PATH="$tmp/bin:/usr/bin:/bin" HOSTNAME=box PGPASSWORD_FILE="$tmp/pw" \
      QPO_CACHE_DIR="$tmp/cache" sh docker/entrypoint.sh worker --class cpu 2>&1) || true
grep -q '^PGPASSWORD=s3cret$' <<<"$out" && pass "entrypoint: PGPASSWORD from PGPASSWORD_FILE" ||
  fail "entrypoint: PGPASSWORD_FILE not read: $out"
grep -qE '^args: worker --class cpu --name [^ ]+$' <<<"$out" && pass "entrypoint: worker --name" ||
  fail "entrypoint: no --name for the worker: $out"
grep -q "QPO_BPE_DIR=$tmp/cache/gpt2_bpe QPO_PROMPTS_DIR=$tmp/cache/prompts" <<<"$out" &&
  pass "entrypoint: tokenizer and prompts from the cache" || fail "entrypoint: data folders: $out"
out=$(env -i PATH="$tmp/bin:/usr/bin:/bin" PGPASSWORD_FILE="$tmp/none" \
      sh docker/entrypoint.sh scheduler 2>&1) && rc=0 || rc=$?
[[ $rc == 2 && $out == *"PGPASSWORD_FILE=$tmp/none cannot be read"* ]] &&
  pass "entrypoint: an unreadable secret file stops it (exit 2)" || fail "entrypoint: rc $rc: $out"
out=$(env -i PATH="$tmp/bin:/usr/bin:/bin" QPO_DB_ROLE=worker QPO_WORKER_PASSWORD=w0rk \
      QPO_CACHE_DIR="$tmp/cache" sh docker/entrypoint.sh worker 2>&1) || true
grep -q '^PGPASSWORD=w0rk$' <<<"$out" && grep -q '^PGUSER=qpo_work PGOPTIONS=-c role=qpo_worker$' <<<"$out" &&
  pass "entrypoint: QPO_DB_ROLE=worker logs in as its role" ||
  fail "entrypoint: QPO_DB_ROLE=worker: $out"
out=$(env -i PATH="$tmp/bin:/usr/bin:/bin" QPO_DB_ROLE=admin sh docker/entrypoint.sh scheduler 2>&1) &&
  rc=0 || rc=$?
[[ $rc == 2 && $out == *"QPO_DB_ROLE=admin is not"* ]] && pass "entrypoint: an unknown QPO_DB_ROLE stops it" ||
  fail "entrypoint: QPO_DB_ROLE=admin: rc $rc: $out"

# --- the images' packages --------------------------------------------------------------
if scripts/install-deps.sh build runtime; then
  pass "scripts/install-deps.sh build runtime installs here"
else
  fail "scripts/install-deps.sh build runtime"
fi
# The runtime list and what it pulls in must provide every library the binary loads.
mapfile -t runtime < <(scripts/install-deps.sh --print runtime)
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
          --no-breaks --no-replaces --no-enhances "${runtime[@]}" 2>/dev/null |
          grep -E '^[a-z0-9]' | sed 's/:.*//' | sort -u)
missing=()
while read -r lib; do
  # dpkg knows a file by the path its package ships; with merged /usr that may be either.
  pkg=$({ dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true; } |
        head -1 | cut -d: -f1)
  [[ -z $pkg || $pkg == libc6 ]] && continue
  grep -qx "$pkg" <<<"$closure" || missing+=("$pkg ($lib)")
done < <(ldd "$bin" | awk '$3 ~ /^\// {print $3}')
[[ ${#missing[@]} -eq 0 ]] && pass "runtime packages provide every library of $bin" ||
  fail "scripts/install-deps.sh runtime lacks: ${missing[*]}"

echo "deploy-check: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
