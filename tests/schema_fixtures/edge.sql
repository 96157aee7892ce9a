-- Edge cases: grant chains, column privileges, NOT VALID and NO INHERIT
-- constraints, exclusion constraints, view options and triggers, enum
-- values added out of order, partition triggers with their own state,
-- compression, unusual sequences, comments on many kinds.
\set ON_ERROR_STOP on
DO $$ BEGIN
  CREATE ROLE fx_edge_a;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE fx_edge_b;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE "fx edge ""C""";
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SCHEMA edge AUTHORIZATION fx_edge_a;
GRANT USAGE ON SCHEMA edge TO fx_edge_b WITH GRANT OPTION;
GRANT CREATE ON SCHEMA edge TO "fx edge ""C""";
CREATE TABLE edge.t (id int PRIMARY KEY, secret text, r int4range, tag text COLLATE "C",
  big text COMPRESSION pglz,
  EXCLUDE USING gist (r WITH &&),
  CONSTRAINT no_inh CHECK (id > -100) NO INHERIT);
ALTER TABLE edge.t OWNER TO fx_edge_a;
GRANT SELECT ON edge.t TO fx_edge_b WITH GRANT OPTION;
SET ROLE fx_edge_b;
GRANT SELECT ON edge.t TO "fx edge ""C""";
RESET ROLE;
GRANT SELECT (secret), UPDATE (secret, tag) ON edge.t TO "fx edge ""C""";
CREATE TABLE edge.child (extra int) INHERITS (edge.t);
ALTER TABLE edge.t ADD CONSTRAINT later_check CHECK (id < 1000000) NOT VALID;
CREATE TABLE edge.fk (id int, t_id int, CONSTRAINT fk_nv FOREIGN KEY (t_id) REFERENCES edge.t (id)
  ON UPDATE CASCADE ON DELETE SET NULL (t_id) DEFERRABLE INITIALLY DEFERRED NOT VALID,
  UNIQUE NULLS NOT DISTINCT (id));
CREATE UNIQUE INDEX t_tag ON edge.t (tag COLLATE "POSIX" DESC NULLS LAST) WITH (fillfactor = 70);
ALTER TABLE edge.t REPLICA IDENTITY USING INDEX t_pkey;
CREATE TYPE edge.e AS ENUM ('b', 'd');
ALTER TYPE edge.e ADD VALUE 'a' BEFORE 'b';
ALTER TYPE edge.e ADD VALUE 'c' AFTER 'b';
ALTER TYPE edge.e ADD VALUE 'z';
CREATE DOMAIN edge.d AS text;
ALTER DOMAIN edge.d ADD CONSTRAINT d_len CHECK (length(VALUE) < 10) NOT VALID;
COMMENT ON CONSTRAINT d_len ON DOMAIN edge.d IS 'domain check';
CREATE SEQUENCE edge.down INCREMENT -2 MINVALUE -1000 MAXVALUE -1 START -10;
CREATE UNLOGGED SEQUENCE edge.unlogged_seq;
CREATE VIEW edge.v WITH (check_option = cascaded, security_invoker = true) AS SELECT id, tag FROM edge.t WHERE id > 0;
ALTER VIEW edge.v ALTER COLUMN tag SET DEFAULT 'x';
COMMENT ON COLUMN edge.v.tag IS 'view column';
CREATE FUNCTION edge.v_ins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER v_ins INSTEAD OF INSERT ON edge.v FOR EACH ROW EXECUTE FUNCTION edge.v_ins();
CREATE RULE v_del AS ON DELETE TO edge.v DO INSTEAD DELETE FROM edge.t WHERE id = OLD.id;
COMMENT ON RULE v_del ON edge.v IS 'rule on a view';
CREATE FUNCTION edge.many(a int, b OUT int, c INOUT text DEFAULT 'x', VARIADIC rest text[] DEFAULT '{}')
  LANGUAGE plpgsql STABLE LEAKPROOF COST 5 SET work_mem = '1MB' AS $$ BEGIN b := a; END $$;
CREATE FUNCTION edge.tab(n int) RETURNS TABLE (i int, sq int) LANGUAGE sql ROWS 10 AS
  'SELECT g, g * g FROM generate_series(1, n) g';
-- A trigger on a partitioned table, disabled on one partition only.
CREATE TABLE edge.p (id int, v text) PARTITION BY LIST (id);
CREATE TABLE edge.p1 PARTITION OF edge.p FOR VALUES IN (1);
CREATE TABLE edge.p2 PARTITION OF edge.p FOR VALUES IN (2);
CREATE FUNCTION edge.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER p_trg BEFORE INSERT ON edge.p FOR EACH ROW EXECUTE FUNCTION edge.noop();
ALTER TABLE edge.p2 DISABLE TRIGGER p_trg;
CREATE MATERIALIZED VIEW edge.mv AS SELECT id FROM edge.t;
CREATE INDEX mv_id ON edge.mv (id);
COMMENT ON COLUMN edge.mv.id IS 'mv column';
CREATE POLICY pol ON edge.t USING (true);
COMMENT ON POLICY pol ON edge.t IS 'policy';
COMMENT ON SEQUENCE edge.down IS 'down';
COMMENT ON VIEW edge.v IS 'view';
COMMENT ON MATERIALIZED VIEW edge.mv IS 'mv';
COMMENT ON FUNCTION edge.many(int, text, text[]) IS 'many';
GRANT EXECUTE ON FUNCTION edge.tab(int) TO fx_edge_b;
GRANT USAGE, SELECT ON SEQUENCE edge.down TO fx_edge_b;
GRANT USAGE ON TYPE edge.e TO fx_edge_b;
ALTER DOMAIN edge.d OWNER TO fx_edge_b;
ALTER SEQUENCE edge.down OWNER TO fx_edge_b;
CREATE TRIGGER p_trg_off AFTER INSERT ON edge.p FOR EACH ROW EXECUTE FUNCTION edge.noop();
ALTER TABLE edge.p DISABLE TRIGGER p_trg_off;
ALTER TABLE edge.p1 ENABLE ALWAYS TRIGGER p_trg_off;
-- A cycle through a column default: the default calls a function that
-- takes the table's row type.
CREATE TABLE edge.cyc (id int, label text);
CREATE FUNCTION edge.cyc_label(edge.cyc) RETURNS text LANGUAGE sql AS 'SELECT $1.label';
ALTER TABLE edge.cyc ALTER COLUMN label SET DEFAULT edge.cyc_label(NULL::edge.cyc);
-- A view relying on a primary key (functional dependency in GROUP BY):
-- it must come after the constraint, in post-data.
CREATE TABLE edge.grp (id int PRIMARY KEY, name text);
CREATE VIEW edge.grp_v AS SELECT id, name, count(*) AS n FROM edge.grp GROUP BY id;
CREATE VIEW edge.grp_v2 AS SELECT * FROM edge.grp_v;
-- A cycle through a CHECK constraint.
CREATE TABLE edge.chk (id int, label text);
CREATE FUNCTION edge.chk_ok(edge.chk) RETURNS boolean LANGUAGE sql AS 'SELECT $1.label IS DISTINCT FROM ''bad''';
ALTER TABLE edge.chk ADD CONSTRAINT chk_row CHECK (edge.chk_ok(chk.*));
COMMENT ON CONSTRAINT chk_row ON edge.chk IS 'row check';
-- TOAST options, inherited n_distinct, publications of partitioned tables.
CREATE TABLE edge.toasty (id int, doc text) WITH (toast.autovacuum_enabled = false, toast_tuple_target = 256);
ALTER TABLE edge.toasty ALTER COLUMN doc SET (n_distinct_inherited = -0.5);
CREATE PUBLICATION edge_pub FOR TABLE edge.p, edge.toasty WITH (publish_via_partition_root = true);
CREATE TABLE edge.bounds (k int) PARTITION BY RANGE (k);
CREATE TABLE edge.bounds_lo PARTITION OF edge.bounds FOR VALUES FROM (MINVALUE) TO (0);
CREATE TABLE edge.bounds_hi PARTITION OF edge.bounds FOR VALUES FROM (0) TO (MAXVALUE);
CREATE INDEX bounds_k ON edge.bounds (k);
-- Keys that restore builds as a unique index, then attaches with
-- ADD CONSTRAINT ... USING INDEX: index options, included columns,
-- deferrable, an index renamed (its constraint follows), a comment and
-- CLUSTER ON the key's index, and plain indexes beside them.
CREATE TABLE edge.keyed (a int, b text, c int, d int,
  CONSTRAINT keyed_pk PRIMARY KEY (a) INCLUDE (b) WITH (fillfactor = 60),
  CONSTRAINT keyed_bc UNIQUE (b, c) DEFERRABLE,
  CONSTRAINT keyed_d UNIQUE NULLS NOT DISTINCT (d) DEFERRABLE INITIALLY IMMEDIATE);
ALTER INDEX edge.keyed_bc RENAME TO keyed_bc_renamed;
CREATE INDEX keyed_c ON edge.keyed (c);
CREATE INDEX keyed_cd ON edge.keyed (c, d DESC);
COMMENT ON INDEX edge.keyed_pk IS 'the key''s index';
ALTER TABLE edge.keyed CLUSTER ON keyed_pk;
INSERT INTO edge.keyed SELECT g, 'b' || g, g % 7, g FROM generate_series(1, 500) g;
-- The same options on a partitioned table's keys, which stay one
-- ADD CONSTRAINT statement.
CREATE TABLE edge.keyed_p (a int, b int,
  CONSTRAINT keyed_p_pk PRIMARY KEY (a) WITH (fillfactor = 70),
  CONSTRAINT keyed_p_ab UNIQUE (a, b) WITH (fillfactor = 80) DEFERRABLE INITIALLY DEFERRED)
  PARTITION BY RANGE (a);
CREATE TABLE edge.keyed_p1 PARTITION OF edge.keyed_p FOR VALUES FROM (0) TO (100);
-- A domain check added NOT VALID over a row that breaks it: it must come
-- after the data.
CREATE DOMAIN edge.posd AS int;
CREATE TABLE edge.dv (v edge.posd);
INSERT INTO edge.dv VALUES (-3), (4);
ALTER DOMAIN edge.posd ADD CONSTRAINT posd_pos CHECK (VALUE > 0) NOT VALID;
COMMENT ON CONSTRAINT posd_pos ON DOMAIN edge.posd IS 'not valid';
-- The public schema every database has: its owner, grants and comment.
ALTER SCHEMA public OWNER TO fx_edge_a;
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fx_edge_b;
COMMENT ON SCHEMA public IS 'edge public';
-- A member of an extension every database has, its privileges changed.
REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;
