#!/usr/bin/env bash
# pgsnap against pg_dump/pg_restore on the benchmark database, side by side in
# one run, alternating, best of ROUNDS. Prints a markdown table (copy it into
# docs/benchmarks.md with the date and machine).
#   bash benches/compare.sh [ROUNDS [SCALE]]
# Uses a throwaway cluster under target/bench-cluster; builds the benchmark
# database with ../shared/bench/build-bench-db.sh (pgbench scale SCALE plus a
# 2M-row events table, ~1.4 GB at scale 50) on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-3}
scale=${2:-50}
work=$root/target/bench-work
cluster=$root/target/bench-cluster
. "$root/scripts/cluster.sh"

command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q time >/dev/null; }
cargo build --release --quiet
pgsnap=$root/target/release/pgsnap

if [ -f "$cluster/data/PG_VERSION" ]; then
  ensure_postgres
  port=$(cat "$cluster/port" 2>/dev/null || echo 0)
  if ! pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
    resume_cluster "$cluster" shared_buffers=512MB max_wal_size=4GB checkpoint_timeout=30min
    echo "$PGPORT" > "$cluster/port"
  else
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PATH="$bindir:$PATH"
  fi
else
  start_cluster "$cluster" shared_buffers=512MB max_wal_size=4GB checkpoint_timeout=30min
  echo "$PGPORT" > "$cluster/port"
fi
db=pgsnap_bench
bash "$root/../shared/bench/build-bench-db.sh" "$db" "$scale" >&2
url="postgres://postgres@127.0.0.1:$PGPORT"
dbsize=$(psql -X -At -d "$db" -c "SELECT pg_database_size('$db')")

rm -rf "$work"; mkdir -p "$work"
"$pgsnap" key generate --out "$work/k" >/dev/null

# run NAME CMD...: wall seconds and peak RSS (KiB) into $work/NAME.times
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/.t" "$@" >/dev/null 2>"$work/$name.err" || {
    echo "FAILED: $name" >&2; cat "$work/$name.err" >&2; exit 1; }
  cat "$work/.t" >> "$work/$name.times"
}
best() { sort -n "$work/$1.times" | head -n 1 | cut -d' ' -f1; }
peak() { sort -n -k2 "$work/$1.times" | tail -n 1 | cut -d' ' -f2; }

# A fresh target, after a checkpoint and once autovacuum is done with the
# last run's tables: each restore starts on a quiet server, not in the
# previous one's write-back. Both tools' targets are dropped, not only the
# one about to be made: autovacuum takes a new database's tables up to a
# minute (autovacuum_naptime) after its restore, so waiting for it is not
# enough, and it then ran inside the other tool's next restore (a VACUUM
# of pg_restore's unfrozen `events` inside pgsnap's run, seen on
# 2026-12-03).
fresh() {
  dropdb --if-exists r_pg; dropdb --if-exists r_snap; createdb "$1"
  psql -X -q -c CHECKPOINT
  while [ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" != 0 ]; do
    sleep 0.5
  done
  sleep 1
}

# The floor: raw COPY TO STDOUT of every table, two at a time, to /dev/null.
tables=$(psql -X -At -d "$db" -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname='public'")
copy_floor() { printf '%s\n' $tables | xargs -P 2 -I{} psql -X -q -d "$db" -c "COPY {} TO STDOUT" >/dev/null; }

for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  rm -f "$work/dump.fc"; run pg_dump_fc pg_dump -Fc -f "$work/dump.fc" -d "$db"
  rm -rf "$work/repo"; run pgsnap_j2 "$pgsnap" backup --db "$url/$db" --repo "$work/repo" --key-file "$work/k" --jobs 2 -q
  run copy_floor bash -c "$(declare -f copy_floor); tables='$tables' db=$db copy_floor"
  rm -rf "$work/repo4"; run pgsnap_j4 "$pgsnap" backup --db "$url/$db" --repo "$work/repo4" --key-file "$work/k" --jobs 4 -q
done
fc_size=$(stat -c %s "$work/dump.fc")
snap_size=$(find "$work/repo" -name '*.pgsnap' -printf '%s')

# Restores: pg_restore -j from a directory-format dump vs pgsnap restore.
rm -rf "$work/dump.d"; pg_dump -Fd -j 2 -f "$work/dump.d" -d "$db"
for r in $(seq "$rounds"); do
  echo "restore round $r/$rounds" >&2
  fresh r_pg; run pg_restore_j2 pg_restore -j 2 -d r_pg "$work/dump.d"
  fresh r_snap; run pgsnap_restore_j2 "$pgsnap" restore --repo "$work/repo" --key-file "$work/k" latest --db "$url/r_snap" --jobs 2 -q
  fresh r_pg; run pg_restore_j1 pg_restore -j 1 -d r_pg "$work/dump.d"
  fresh r_snap; run pgsnap_restore_j1 "$pgsnap" restore --repo "$work/repo" --key-file "$work/k" latest --db "$url/r_snap" --jobs 1 -q
done
dropdb --if-exists r_pg; dropdb --if-exists r_snap

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.0f}')"; }
cat <<EOT
Benchmark database: $db, $(mib "$dbsize") MiB on disk; best of $rounds rounds, alternating; $(nproc) cores.

| measure | pgsnap | pg_dump / pg_restore | ratio (target) |
| --- | --- | --- | --- |
| backup time, --jobs 2 vs pg_dump -Fc | $(best pgsnap_j2) s | $(best pg_dump_fc) s | $(ratio "$(best pgsnap_j2)" "$(best pg_dump_fc)") (<= 0.67) |
| raw COPY TO STDOUT floor, 2 streams | $(best copy_floor) s | | |
| archive size vs -Fc | $(mib "$snap_size") MiB | $(mib "$fc_size") MiB | $(ratio "$snap_size" "$fc_size") (<= 1.00) |
| peak RSS, backup --jobs 2 | $(( $(peak pgsnap_j2) / 1024 )) MiB | $(( $(peak pg_dump_fc) / 1024 )) MiB | |
| peak RSS, backup --jobs 4 | $(( $(peak pgsnap_j4) / 1024 )) MiB | | (<= 256 MiB) |
| backup time, --jobs 4 | $(best pgsnap_j4) s | | |
| restore time, --jobs 2 vs pg_restore -j 2 | $(best pgsnap_restore_j2) s | $(best pg_restore_j2) s | $(ratio "$(best pgsnap_restore_j2)" "$(best pg_restore_j2)") (<= 0.75) |
| restore time, --jobs 1 vs pg_restore -j 1 | $(best pgsnap_restore_j1) s | $(best pg_restore_j1) s | $(ratio "$(best pgsnap_restore_j1)" "$(best pg_restore_j1)") |
EOT

# Every round, in order: the machine is shared and noisy, so the per-round
# pairs (each pgsnap run next to the pg_restore run before it) say more than
# the best of each alone.
rounds_of() { cut -d' ' -f1 "$work/$1.times" | paste -sd' '; }
per_round() {
  paste -d' ' <(cut -d' ' -f1 "$work/$1.times") <(cut -d' ' -f1 "$work/$2.times") |
    awk '{printf "%s%.2f", (NR>1?" ":""), $1/$2} END {print ""}'
}
echo
echo "Every round (s): restore --jobs 2 $(rounds_of pgsnap_restore_j2) against pg_restore -j 2 $(rounds_of pg_restore_j2) (ratios $(per_round pgsnap_restore_j2 pg_restore_j2)); --jobs 1 $(rounds_of pgsnap_restore_j1) against $(rounds_of pg_restore_j1) (ratios $(per_round pgsnap_restore_j1 pg_restore_j1))."
