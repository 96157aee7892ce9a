#!/usr/bin/env bash
# The main job end to end on the embedded default: a throwaway local
# PostgreSQL with the sample application data, a local directory repository
# and a generated key file. Backs up, lists, verifies, restores into a new
# database and shows that the copy matches the source.
#   bash scripts/demo.sh [SCALE]      (SCALE multiplies the sample's big tables; default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scale=${1:-1}
work=$root/.pgsnap-demo
fixture=$root/../shared/fixtures/quran_backend.sql

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

. "$root/scripts/cluster.sh"

say "building pgsnap (release)"
cargo build --release --quiet
pgsnap=$root/target/release/pgsnap

say "starting a throwaway PostgreSQL ($work/data)"
start_cluster "$work"
trap 'stop_cluster "$work"' EXIT
url="postgres://postgres@127.0.0.1:$PGPORT"

say "loading the sample application data (scale $scale)"
createdb quran
psql -X -q -v ON_ERROR_STOP=1 -v scale="$scale" -d quran -f "$fixture" >/dev/null
psql -X -At -d quran -c "SELECT count(*) || ' tables, ' || pg_size_pretty(pg_database_size('quran')) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')"

say "pgsnap key generate"
"$pgsnap" key generate --out "$work/backup.key"

say "pgsnap backup"
id=$("$pgsnap" backup --db "$url/quran" --repo "$work/repo" --key-file "$work/backup.key" --jobs 2 --tag env=demo)
echo "backup id: $id"

say "pgsnap list"
"$pgsnap" list --repo "$work/repo"

say "pgsnap verify"
"$pgsnap" verify --repo "$work/repo" --key-file "$work/backup.key" "$id"

say "pgsnap restore into a new database"
createdb quran_restored
"$pgsnap" restore --repo "$work/repo" --key-file "$work/backup.key" "$id" --db "$url/quran_restored" --jobs 2

say "comparing source and copy"
pg_dump --schema-only -d quran | grep -v '^.\(un\)\?restrict ' | sed 's/quran_restored/DB/g; s/quran/DB/g' > "$work/src.sql"
pg_dump --schema-only -d quran_restored | grep -v '^.\(un\)\?restrict ' | sed 's/quran_restored/DB/g; s/quran/DB/g' > "$work/dst.sql"
diff -u "$work/src.sql" "$work/dst.sql" && echo "schema: identical (pg_dump --schema-only)"
rows_of() {
  psql -X -At -d "$1" -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1" |
  while read -r t; do
    echo "== $t"; psql -X -At -d "$1" -c "SELECT x::text FROM ONLY $t x" | sort
  done
}
rows_of quran > "$work/src.rows"; rows_of quran_restored > "$work/dst.rows"
cmp "$work/src.rows" "$work/dst.rows" && echo "data: identical, $(grep -vc '^==' "$work/src.rows") rows in $(grep -c '^==' "$work/src.rows") tables"
say "done: the restored copy matches the source"
