# Sourced by scripts/demo.sh and benches/compare.sh: a throwaway PostgreSQL
# cluster in a directory, on a free loopback port. initdb refuses root, so
# as root the server runs as the `postgres` OS user.
#   start_cluster DIR [extra postgres -c settings...]   exports PGHOST PGPORT PGUSER, sets $bindir
#   resume_cluster DIR [settings...]   the same for a cluster DIR already holds
#   stop_cluster DIR

ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing the PostgreSQL server (apt)" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib >/dev/null
  fi
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
}

_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_cluster() {
  local dir; dir=$(realpath -m "$1"); shift
  ensure_postgres
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  _as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  local opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir"
  for s in "$@"; do opts="$opts -c $s"; done
  _as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$opts" start >/dev/null
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
  export PATH="$bindir:$PATH"
}

# resume_cluster DIR [settings...]: starts the cluster already in DIR (kept
# data) on a new free port; same exports as start_cluster.
resume_cluster() {
  local dir; dir=$(realpath -m "$1"); shift
  ensure_postgres
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir"
  for s in "$@"; do opts="$opts -c $s"; done
  _as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$opts" start >/dev/null
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
  export PATH="$bindir:$PATH"
}

stop_cluster() {
  _as_pg "$bindir/pg_ctl" -D "$1/data" -m fast stop >/dev/null 2>&1 || true
}
