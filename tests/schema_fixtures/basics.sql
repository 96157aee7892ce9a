-- Schemas, types, domains, functions, sequences, tables with defaults,
-- identity, generated columns, constraints, indexes, views, comments,
-- owners and grants.
\set ON_ERROR_STOP on
DO $$ BEGIN
  CREATE ROLE fx_basic_owner;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE fx_basic_reader;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;

CREATE SCHEMA app AUTHORIZATION fx_basic_owner;
COMMENT ON SCHEMA app IS 'the app''s schema';
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE app.pair AS (a integer, b text COLLATE "C");
CREATE TYPE app.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE DOMAIN app.posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN app.small_posint AS app.posint CONSTRAINT small CHECK (VALUE < 1000) NOT NULL DEFAULT 1;
CREATE FUNCTION app.next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'C' || floor(random() * 1000)::text $$;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE SEQUENCE app.counter START 100 INCREMENT 5 MAXVALUE 100000 CYCLE CACHE 3;
CREATE TABLE app."Order" (
  id bigint GENERATED ALWAYS AS IDENTITY (START WITH 10),
  code text NOT NULL DEFAULT app.next_code(),
  n app.small_posint,
  mood app.mood DEFAULT 'ok',
  moods app.mood[],
  price numeric(10,2) CHECK (price >= 0),
  qty integer DEFAULT nextval('app.counter'),
  total numeric GENERATED ALWAYS AS (price * qty) STORED,
  note varchar(20) COLLATE "C",
  updated timestamptz,
  PRIMARY KEY (id),
  UNIQUE (code) DEFERRABLE INITIALLY DEFERRED
);
ALTER TABLE app."Order" ALTER COLUMN note SET STORAGE EXTERNAL, ALTER COLUMN qty SET STATISTICS 500,
  ALTER COLUMN code SET (n_distinct = 100);
ALTER TABLE app."Order" SET (fillfactor = 80, autovacuum_enabled = false);
CREATE TABLE app.line (
  id serial PRIMARY KEY,
  order_id bigint REFERENCES app."Order" (id) ON DELETE CASCADE,
  dropped_col int,
  label text
);
ALTER TABLE app.line DROP COLUMN dropped_col;
ALTER TABLE app.line ADD CONSTRAINT label_len CHECK (length(label) < 100) NOT VALID;
CREATE INDEX line_label_idx ON app.line (lower(label)) WHERE label IS NOT NULL;
CREATE INDEX line_cover ON app.line (order_id) INCLUDE (label);
ALTER TABLE app.line CLUSTER ON line_cover;
CREATE TRIGGER order_touch BEFORE UPDATE ON app."Order" FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE TRIGGER order_touch_off BEFORE INSERT ON app."Order" FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app."Order" DISABLE TRIGGER order_touch_off;
CREATE VIEW app.order_view WITH (security_barrier) AS SELECT id, code, total FROM app."Order" WHERE total > 0;
CREATE MATERIALIZED VIEW app.order_mv AS SELECT mood, count(*) AS n FROM app."Order" GROUP BY mood;
CREATE UNLOGGED TABLE app.scratch (k text PRIMARY KEY, v jsonb);
COMMENT ON TABLE app."Order" IS 'Orders
with "quotes" and ''apostrophes''';
COMMENT ON COLUMN app."Order".code IS 'order code';
COMMENT ON CONSTRAINT "Order_pkey" ON app."Order" IS 'pk';
COMMENT ON INDEX app.line_label_idx IS 'partial';
COMMENT ON FUNCTION app.touch() IS 'trigger fn';
COMMENT ON TYPE app.mood IS 'moods';
COMMENT ON DOMAIN app.posint IS 'positive';
COMMENT ON TRIGGER order_touch ON app."Order" IS 'touch';
ALTER TABLE app."Order" OWNER TO fx_basic_owner;
ALTER TABLE app.line OWNER TO fx_basic_owner;
ALTER FUNCTION app.touch() OWNER TO fx_basic_owner;
ALTER TYPE app.mood OWNER TO fx_basic_owner;
GRANT USAGE ON SCHEMA app TO fx_basic_reader;
GRANT SELECT ON app."Order" TO fx_basic_reader;
GRANT UPDATE (note) ON app."Order" TO fx_basic_reader;
GRANT SELECT, INSERT ON app.line TO fx_basic_reader WITH GRANT OPTION;
REVOKE EXECUTE ON FUNCTION app.next_code() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.next_code() TO fx_basic_reader;
GRANT USAGE ON SEQUENCE app.counter TO fx_basic_reader;
REVOKE USAGE ON TYPE app.mood FROM PUBLIC;
CREATE POLICY reader_sees ON app.line FOR SELECT TO fx_basic_reader USING (label <> 'secret');
CREATE POLICY restrict_ins ON app.line AS RESTRICTIVE FOR INSERT WITH CHECK (label IS NOT NULL);
ALTER TABLE app.line ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.line FORCE ROW LEVEL SECURITY;
CREATE RULE no_delete AS ON DELETE TO app.scratch DO INSTEAD NOTHING;
ALTER TABLE app.scratch REPLICA IDENTITY FULL;
GRANT USAGE ON SEQUENCE app."Order_id_seq" TO fx_basic_reader;
COMMENT ON SEQUENCE app."Order_id_seq" IS 'identity sequence';
