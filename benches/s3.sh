#!/usr/bin/env bash
# pgsnap backup to S3 (moto on loopback) against the same backup to a local
# directory, alternating, best of ROUNDS; peak RSS of each. Prints a markdown
# table (copy it into docs/benchmarks.md, section "S3", with date and machine).
#   bash benches/s3.sh [ROUNDS [SCALE [JOBS]]]
# Uses its own throwaway cluster under target/bench-cluster-s3 and the
# benchmark database of ../shared/bench/build-bench-db.sh (pgbench scale
# SCALE plus a 2M-row events table, ~1.4 GB at scale 50), and moto_server
# from .venv (bash .ci/run --setup-only) or PGSNAP_MOTO_SERVER.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-2}
scale=${2:-50}
jobs=${3:-4}
work=$root/target/bench-work-s3
cluster=$root/target/bench-cluster-s3
. "$root/scripts/cluster.sh"

command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q time >/dev/null; }
cargo build --release --quiet --bin pgsnap
pgsnap=$root/target/release/pgsnap
moto=${PGSNAP_MOTO_SERVER:-$root/.venv/bin/moto_server}
python=$(dirname "$moto")/python
[ -x "$moto" ] || { echo "no moto_server at $moto: run bash .ci/run --setup-only" >&2; exit 1; }

start_cluster "$cluster" shared_buffers=512MB max_wal_size=4GB checkpoint_timeout=30min
trap 'stop_cluster "$cluster"; [ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null || true' EXIT
db=pgsnap_bench
bash "$root/../shared/bench/build-bench-db.sh" "$db" "$scale" >&2
url="postgres://postgres@127.0.0.1:$PGPORT"
dbsize=$(psql -X -At -d "$db" -c "SELECT pg_database_size('$db')")

mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$moto" -H 127.0.0.1 -p "$mport" >/dev/null 2>&1 &
moto_pid=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$mport AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $mport))" 2>/dev/null && break
  sleep 0.1
done
kms_key=$("$python" - <<EOF
import boto3
boto3.client("s3", endpoint_url="$AWS_ENDPOINT_URL", region_name="us-east-1").create_bucket(Bucket="bench")
print(boto3.client("kms", endpoint_url="$AWS_ENDPOINT_URL", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"])
EOF
)

rm -rf "$work"; mkdir -p "$work"
"$pgsnap" key generate --out "$work/k" >/dev/null

# run NAME CMD...: wall seconds and peak RSS (KiB) into $work/NAME.times; for
# backups (--json), the seconds after the data phase (last parts, complete,
# metadata copy, integrity check; fsync and rename locally) into NAME.tails
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/.t" "$@" >"$work/$name.json" 2>"$work/$name.err" || {
    echo "FAILED: $name" >&2; cat "$work/$name.err" >&2; exit 1; }
  cat "$work/.t" >> "$work/$name.times"
  python3 -c "import json,sys; t=json.loads(open(sys.argv[1]).read().splitlines()[-1])['timings']; \
print(f\"{t['total_seconds']-t['data_seconds']-t['schema_seconds']-t['connect_seconds']:.2f}\")" \
    "$work/$name.json" >> "$work/$name.tails" 2>/dev/null || true
}
tail_of() { sort -n "$work/$1.tails" | head -n 1; }
best() { sort -n "$work/$1.times" | head -n 1 | cut -d' ' -f1; }
peak() { sort -n -k2 "$work/$1.times" | tail -n 1 | cut -d' ' -f2; }

for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  rm -rf "$work/repo"
  run local "$pgsnap" backup --db "$url/$db" --repo "$work/repo" --key-file "$work/k" --jobs "$jobs" -q --json
  run s3 "$pgsnap" backup --db "$url/$db" --repo "s3://bench/r$r" --key-file "$work/k" --jobs "$jobs" -q --json
  run s3_kms "$pgsnap" backup --db "$url/$db" --repo "s3://bench/k$r" --kms-key-id "$kms_key" --jobs "$jobs" -q --json
done
snap_size=$(find "$work/repo" -name '*.pgsnap' -printf '%s')
# A one-table restore from S3: bytes read against the archive size.
createdb r_one
"$pgsnap" restore --repo s3://bench/k1 latest --db "$url/r_one" --table public.pgbench_branches --json -q \
  > "$work/one.json"
dropdb r_one
one_read=$(python3 -c "import json; r=json.loads(open('$work/one.json').read().splitlines()[-1]); print(r['bytes_read'])")

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.0f}')"; }
cat <<EOT
Benchmark database: $db (scale $scale), $(mib "$dbsize") MiB on disk, archive $(mib "$snap_size") MiB; --jobs $jobs; best of $rounds rounds, alternating; $(nproc) cores shared by PostgreSQL, pgsnap and moto.

| measure | S3 (moto, loopback) | local directory | ratio (target) |
| --- | --- | --- | --- |
| backup time, key file | $(best s3) s | $(best local) s | $(ratio "$(best s3)" "$(best local)") (<= 1.3) |
| backup time, KMS data key + SSE-KMS | $(best s3_kms) s | | $(ratio "$(best s3_kms)" "$(best local)") |
| seconds after the data phase (best) | $(tail_of s3) s | $(tail_of local) s | |
| peak RSS, backup | $(( $(peak s3) / 1024 )) MiB | $(( $(peak local) / 1024 )) MiB | (<= 256 MiB) |
| one-table restore (pgbench_branches), bytes read | $(( one_read / 1024 )) KiB of $(mib "$snap_size") MiB | | |
EOT
