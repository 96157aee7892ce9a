-- Inheritance with columns in a different order than INHERITS would give,
-- multiple parents, merged columns, differing defaults; declarative
-- partitioning over several levels with default partitions, dropped
-- columns, partitioned indexes and keys, triggers and foreign keys.
\set ON_ERROR_STOP on
CREATE SCHEMA inh;
CREATE TABLE inh.parent (a int NOT NULL, b text DEFAULT 'p', c date, CONSTRAINT a_pos CHECK (a > 0));
-- Natural order: INHERITS works.
CREATE TABLE inh.child_natural (d int, b text DEFAULT 'child') INHERITS (inh.parent);
ALTER TABLE inh.child_natural ALTER COLUMN c SET DEFAULT '2020-01-01';
-- Different order: created standalone, then INHERIT.
CREATE TABLE inh.child_reordered (c date, x int, b text DEFAULT 'p', a int NOT NULL, CONSTRAINT a_pos CHECK (a > 0));
ALTER TABLE inh.child_reordered INHERIT inh.parent;
-- A local constraint merged with the parent's, and one of its own.
CREATE TABLE inh.child_local (a int NOT NULL, b text, c date, CONSTRAINT a_pos CHECK (a > 0), CONSTRAINT own CHECK (b <> ''));
ALTER TABLE inh.child_local INHERIT inh.parent;
-- Grandchild and multiple parents.
CREATE TABLE inh.other (z int, a int NOT NULL);
CREATE TABLE inh.multi (w int) INHERITS (inh.parent, inh.other);
CREATE TABLE inh.grandchild () INHERITS (inh.child_natural);
-- Dropped column in the parent.
ALTER TABLE inh.parent ADD COLUMN gone int;
ALTER TABLE inh.parent DROP COLUMN gone;
ALTER TABLE inh.parent ADD COLUMN e numeric;

-- Declarative partitioning, three levels.
CREATE TABLE inh.events (id bigint NOT NULL, at timestamptz NOT NULL, kind text NOT NULL, payload jsonb,
  CONSTRAINT kind_ok CHECK (kind <> '')) PARTITION BY RANGE (at);
CREATE TABLE inh.events_2025 PARTITION OF inh.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
  PARTITION BY LIST (kind);
CREATE TABLE inh.events_2025_login PARTITION OF inh.events_2025 FOR VALUES IN ('login', 'logout');
CREATE TABLE inh.events_2025_other PARTITION OF inh.events_2025 DEFAULT;
CREATE TABLE inh.events_default PARTITION OF inh.events DEFAULT;
-- A partition attached with a different column order and a dropped column.
CREATE TABLE inh.events_2026 (kind text NOT NULL, junk int, payload jsonb, at timestamptz NOT NULL, id bigint NOT NULL,
  CONSTRAINT kind_ok CHECK (kind <> ''));
ALTER TABLE inh.events_2026 DROP COLUMN junk;
ALTER TABLE inh.events ATTACH PARTITION inh.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE inh.events ADD PRIMARY KEY (id, at, kind);
CREATE INDEX events_kind ON inh.events (kind);
CREATE UNIQUE INDEX events_payload_id ON inh.events_2026 ((payload->>'id'));
CREATE TABLE inh.hashed (id int, v text) PARTITION BY HASH (id);
CREATE TABLE inh.hashed_0 PARTITION OF inh.hashed FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE inh.hashed_1 PARTITION OF inh.hashed FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE inh.refs (id bigint, at timestamptz, kind text, FOREIGN KEY (id, at, kind) REFERENCES inh.events (id, at, kind));
CREATE TABLE inh.tenant (id int PRIMARY KEY);
ALTER TABLE inh.events ADD COLUMN tenant int REFERENCES inh.tenant (id);
CREATE FUNCTION inh.trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER events_trg AFTER INSERT ON inh.events FOR EACH ROW EXECUTE FUNCTION inh.trg();
CREATE TRIGGER own_trg BEFORE INSERT ON inh.events_2026 FOR EACH ROW EXECUTE FUNCTION inh.trg();
ALTER TABLE inh.events_2026 DISABLE TRIGGER own_trg;
COMMENT ON TABLE inh.events_2025_login IS 'leaf';
-- Typed table.
CREATE TYPE inh.person AS (name text, age int);
CREATE TABLE inh.people OF inh.person (PRIMARY KEY (name), age WITH OPTIONS DEFAULT 0);
