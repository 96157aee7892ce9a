#!/usr/bin/env bash
# Builds the many-objects database: per SCALE unit, 40 schemas x 100 small
# tables (a key, an index, 3 rows, comments, grants), ~1,560 foreign keys,
# 1,000 plpgsql functions, 520 views, 320 sequences and a partitioned table
# with 500 partitions. Used by benches/many-objects.sh.
#   bash benches/many-objects/build.sh DB [SCALE]
set -euo pipefail
DB=$1; SCALE=${2:-1}
NS=$((40*SCALE)); NP=$((500*SCALE))
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'EOF'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='r_read')  THEN CREATE ROLE r_read;  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='r_write') THEN CREATE ROLE r_write; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='r_app')   THEN CREATE ROLE r_app;   END IF;
END $$;
EOF
createdb "$DB"
{
cat <<EOF
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
COMMENT ON DATABASE "$DB" IS 'many objects test db';
EOF
for s in $(seq 1 $NS); do
cat <<EOF
DO \$gen\$
DECLARE
  s int := $s;
  sch text := format('s_%s', lpad(s::text, 3, '0'));
  prev text := format('s_%s', lpad((s-1)::text, 3, '0'));
  t text; k int;
BEGIN
  EXECUTE format('CREATE SCHEMA %I', sch);
  EXECUTE format('COMMENT ON SCHEMA %I IS %L', sch, 'schema '||s);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO r_read, r_write, r_app', sch);
  FOR k IN 1..100 LOOP
    t := format('t_%s', lpad(k::text, 3, '0'));
    EXECUTE format('CREATE TABLE %I.%I (id int PRIMARY KEY, parent_id int, v text NOT NULL, amount numeric(10,2) DEFAULT 0, created date DEFAULT ''2024-01-01'')', sch, t);
    EXECUTE format('CREATE INDEX %I ON %I.%I (v)', t||'_v_idx', sch, t);
    EXECUTE format('INSERT INTO %I.%I SELECT g, CASE WHEN g > 1 THEN g-1 END, %L || g, g*1.5 FROM generate_series(1,3) g', sch, t, sch||'.'||t||' row ');
    EXECUTE format('COMMENT ON TABLE %I.%I IS %L', sch, t, 'table '||sch||'.'||t);
    IF k % 3 = 0 THEN EXECUTE format('COMMENT ON COLUMN %I.%I.v IS %L', sch, t, 'value column'); END IF;
    EXECUTE format('GRANT SELECT ON %I.%I TO r_read', sch, t);
    IF k % 4 = 0 THEN EXECUTE format('GRANT INSERT, UPDATE ON %I.%I TO r_write', sch, t); END IF;
    -- FKs: ~37 per schema to the previous table, plus one across schemas
    IF k > 1 AND k % 8 IN (1,2,3) THEN
      EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I FOREIGN KEY (parent_id) REFERENCES %I.%I (id)', sch, t, t||'_parent_fk', sch, format('t_%s', lpad((k-1)::text, 3, '0')));
    END IF;
    IF k = 1 AND s > 1 THEN
      EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I FOREIGN KEY (parent_id) REFERENCES %I.t_100 (id)', sch, t, t||'_xfk', prev);
    END IF;
  END LOOP;
  -- 25 plpgsql functions
  FOR k IN 1..25 LOOP
    EXECUTE format(\$f\$CREATE FUNCTION %I.%I(p int) RETURNS bigint LANGUAGE plpgsql STABLE AS \$b\$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM %I.%I WHERE id <= p;
  RETURN n + %s;
END \$b\$\$f\$, sch, format('f_%s', lpad(k::text, 3, '0')), sch, format('t_%s', lpad(k::text, 3, '0')), k);
    EXECUTE format('COMMENT ON FUNCTION %I.%I(int) IS %L', sch, format('f_%s', lpad(k::text, 3, '0')), 'function '||k);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(int) TO r_app', sch, format('f_%s', lpad(k::text, 3, '0')));
  END LOOP;
  -- 13 views (joins, some calling functions, one view on a view)
  FOR k IN 1..12 LOOP
    EXECUTE format('CREATE VIEW %I.%I AS SELECT a.id, a.v, b.v AS bv, %I.%I(a.id) AS n FROM %I.%I a LEFT JOIN %I.%I b ON b.id = a.parent_id',
      sch, format('v_%s', lpad(k::text, 3, '0')), sch, format('f_%s', lpad(k::text, 3, '0')),
      sch, format('t_%s', lpad((k*8)::text, 3, '0')), sch, format('t_%s', lpad((k*8-1)::text, 3, '0')));
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', sch, format('v_%s', lpad(k::text, 3, '0')), 'view '||k);
    EXECUTE format('GRANT SELECT ON %I.%I TO r_read', sch, format('v_%s', lpad(k::text, 3, '0')));
  END LOOP;
  EXECUTE format('CREATE VIEW %I.v_all AS SELECT * FROM %I.v_001 UNION ALL SELECT * FROM %I.v_002', sch, sch, sch);
  -- 8 sequences
  FOR k IN 1..8 LOOP
    EXECUTE format('CREATE SEQUENCE %I.%I START %s INCREMENT %s', sch, format('seq_%s', k), k*10, k);
    EXECUTE format('SELECT setval(%L, %s)', sch||'.'||format('seq_%s', k), 100+k*s);
    EXECUTE format('COMMENT ON SEQUENCE %I.%I IS %L', sch, format('seq_%s', k), 'sequence');
    EXECUTE format('GRANT USAGE ON SEQUENCE %I.%I TO r_app', sch, format('seq_%s', k));
  END LOOP;
END
\$gen\$;
EOF
done
cat <<EOF
CREATE TABLE public.events (k int NOT NULL, id int NOT NULL, payload text, PRIMARY KEY (k, id)) PARTITION BY RANGE (k);
CREATE INDEX events_payload_idx ON public.events (payload);
COMMENT ON TABLE public.events IS 'partitioned';
GRANT SELECT ON public.events TO r_read;
DO \$p\$
BEGIN
  FOR i IN 0..$((NP-1)) LOOP
    EXECUTE format('CREATE TABLE public.%I PARTITION OF public.events FOR VALUES FROM (%s) TO (%s)', 'events_p'||lpad(i::text,4,'0'), i*10, i*10+10);
  END LOOP;
END \$p\$;
INSERT INTO public.events SELECT g, g, 'payload '||g FROM generate_series(0, $((NP*10-1)), 5) g;
ANALYZE;
EOF
} | psql -X -q -d "$DB"
