#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the demo and benchmarks.
#   eval "$(scripts/pg-throwaway.sh start DIR)"   sets DATABASE_URL (unix socket in DIR)
#   scripts/pg-throwaway.sh stop DIR
# As root the server runs as the postgres user, since initdb refuses root.
set -euo pipefail
action=${1:?start|stop}; dir=${2:?directory}
bindir=${QPO_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
case "$action" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$dir"
      # The postgres user must be able to reach DIR (mktemp -d makes 0700 parents).
      chmod o+x "$(dirname "$dir")"
    fi
    port=$((20000 + RANDOM % 20000))
    "${as_pg[@]}" "$bindir/initdb" -D "$dir" -A trust -U postgres -N -E UTF8 --locale=C >/dev/null
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o \
      "-p $port -c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=300 ${QPO_PG_OPTS:-}" \
      start >/dev/null
    echo "export DATABASE_URL='postgresql:///postgres?host=$dir&port=$port&user=postgres'"
    ;;
  stop)
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
esac
