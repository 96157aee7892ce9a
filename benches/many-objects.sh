#!/usr/bin/env bash
# pgsnap against pg_dump/pg_restore on a database of many small objects
# (benches/many-objects/build.sh: 4,500 tables, 9,000 indexes, 1,000
# functions, ... per SCALE unit), side by side, alternating, best of ROUNDS:
# where a schedule or a check that is quadratic in the number of objects
# shows. Prints a markdown table and pgsnap's restore phases.
#   bash benches/many-objects.sh [ROUNDS [SCALE]]
# Uses a throwaway cluster under target/bench-many, with
# max_locks_per_transaction = 256: a restore creates its definitions in one
# transaction, which holds a lock per relation (about 5,400 at SCALE 1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-3}
scale=${2:-1}
work=$root/target/bench-many-work
cluster=$root/target/bench-many
. "$root/scripts/cluster.sh"

command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q time >/dev/null; }
cargo build --release --quiet
pgsnap=$root/target/release/pgsnap

settings="max_locks_per_transaction=256 shared_buffers=256MB max_wal_size=4GB"
# Stopped at the end; one left running by an interrupted run is stopped here.
ensure_postgres
[ -f "$cluster/data/postmaster.pid" ] && stop_cluster "$cluster"
if [ -f "$cluster/data/PG_VERSION" ]; then
  # shellcheck disable=SC2086
  resume_cluster "$cluster" $settings
else
  # shellcheck disable=SC2086
  start_cluster "$cluster" $settings
fi
db=many_$scale
if ! psql -X -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  echo "building $db (scale $scale)" >&2
  bash "$root/benches/many-objects/build.sh" "$db" "$scale"
fi
url="postgres://postgres@127.0.0.1:$PGPORT"
user_rel="c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)"
counts=$(psql -X -At -d "$db" -c "SELECT (SELECT count(*) FROM pg_class c WHERE c.relkind IN ('r','p') AND $user_rel) || ' tables, ' || (SELECT count(*) FROM pg_class c WHERE c.relkind IN ('i','I') AND $user_rel) || ' indexes, ' || (SELECT count(*) FROM pg_constraint WHERE contype = 'f') || ' foreign keys, ' || (SELECT count(*) FROM pg_proc WHERE pronamespace <> 'pg_catalog'::regnamespace AND pronamespace <> 'information_schema'::regnamespace) || ' functions'")

rm -rf "$work"; mkdir -p "$work"
"$pgsnap" key generate --out "$work/k" >/dev/null

# run NAME CMD...: wall seconds, client CPU seconds into $work/NAME.times
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/.t" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
    echo "FAILED: $name" >&2; tail -c 2000 "$work/$name.err" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/.t" >> "$work/$name.times"
}
best() { sort -n "$work/$1.times" | head -n 1 | cut -d' ' -f"$2"; }
fresh() {
  dropdb --if-exists r_pg 2>/dev/null; dropdb --if-exists r_snap 2>/dev/null
  createdb "$1"
  psql -X -q -c CHECKPOINT
}

run snap_backup "$pgsnap" -q backup --repo "$work/repo" --key-file "$work/k" --db "$url/$db" --jobs 2
run pg_dump pg_dump -Fc -f "$work/dump" "$db"
for i in $(seq 1 "$rounds"); do
  echo "restore round $i/$rounds" >&2
  fresh r_pg
  run pg_restore pg_restore -j 2 -d r_pg "$work/dump"
  fresh r_snap
  run snap_restore "$pgsnap" -q restore --repo "$work/repo" --key-file "$work/k" latest \
    --db "$url/r_snap" --jobs 2 --json
  tail -n 1 "$work/snap_restore.out" | python3 -c 'import json, sys; print(" ".join(f"{n} {s:.1f}" for n, s in json.load(sys.stdin)["phases"]))' >> "$work/phases"
done
dropdb --if-exists r_pg; dropdb --if-exists r_snap
stop_cluster "$cluster"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "Many-objects database $db: $counts; best of $rounds rounds, alternating; $(nproc) cores."
echo
echo "| measure | pgsnap | pg_dump / pg_restore | ratio |"
echo "| --- | --- | --- | --- |"
echo "| backup, --jobs 2 vs pg_dump -Fc | $(best snap_backup 1) s | $(best pg_dump 1) s | $(ratio "$(best snap_backup 1)" "$(best pg_dump 1)") |"
echo "| restore, --jobs 2 vs pg_restore -j 2 | $(best snap_restore 1) s | $(best pg_restore 1) s | $(ratio "$(best snap_restore 1)" "$(best pg_restore 1)") |"
echo "| client CPU of that restore | $(best snap_restore 2) s | $(best pg_restore 2) s | |"
echo
echo "pgsnap's restore phases (s), by round:"
sed 's/^/- /' "$work/phases"
