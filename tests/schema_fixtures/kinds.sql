-- The less common object kinds: extensions, collations, base and shell
-- types, multiranges, aggregates, operators, casts, text search objects,
-- FDWs, servers, user mappings, foreign tables, statistics objects, event
-- triggers, publications, default privileges, large objects, database
-- settings, and a view/function dependency cycle.
\set ON_ERROR_STOP on
DO $$ BEGIN
  CREATE ROLE fx_kinds_owner;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE fx_kinds_reader;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SCHEMA kinds;
CREATE SCHEMA ext;
CREATE EXTENSION citext WITH SCHEMA ext;
CREATE EXTENSION hstore WITH SCHEMA public;
COMMENT ON EXTENSION hstore IS 'key/value';
CREATE COLLATION kinds.german (provider = icu, locale = 'de-DE');
CREATE COLLATION kinds.nd (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE COLLATION kinds.c_copy (locale = 'C');
CREATE TABLE kinds.users (email ext.citext PRIMARY KEY, name text COLLATE kinds.german, tags hstore, nick text COLLATE kinds.nd);

-- A base type with its shell and I/O functions.
CREATE TYPE kinds.myint;
CREATE FUNCTION kinds.myint_in(cstring) RETURNS kinds.myint LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
CREATE FUNCTION kinds.myint_out(kinds.myint) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
CREATE TYPE kinds.myint (INPUT = kinds.myint_in, OUTPUT = kinds.myint_out, INTERNALLENGTH = 4, PASSEDBYVALUE, ALIGNMENT = int4);
CREATE TYPE kinds.never_defined;
CREATE TABLE kinds.uses_myint (v kinds.myint, r int4multirange);
CREATE TYPE kinds.textrange AS RANGE (subtype = text, collation = "C", multirange_type_name = kinds.textmultirange);

-- Aggregates, operators, casts.
CREATE FUNCTION kinds.add2(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
CREATE AGGREGATE kinds.mysum(int) (SFUNC = kinds.add2, STYPE = int, INITCOND = '0', PARALLEL = SAFE);
CREATE AGGREGATE kinds.mymax(int) (SFUNC = int4larger, STYPE = int, SORTOP = >);
CREATE FUNCTION kinds.approx_eq(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT lower($1) = lower($2)';
CREATE OPERATOR kinds.=~= (FUNCTION = kinds.approx_eq, LEFTARG = text, RIGHTARG = text, COMMUTATOR = OPERATOR(kinds.=~=));
CREATE OPERATOR kinds.## (FUNCTION = pg_catalog.int8abs, RIGHTARG = bigint);
CREATE TYPE kinds.celsius AS (v numeric);
CREATE FUNCTION kinds.to_num(kinds.celsius) RETURNS numeric LANGUAGE sql AS 'SELECT $1.v';
CREATE CAST (kinds.celsius AS numeric) WITH FUNCTION kinds.to_num(kinds.celsius) AS ASSIGNMENT;
CREATE CAST (kinds.myint AS int4) WITHOUT FUNCTION;
CREATE PROCEDURE kinds.do_nothing(a int DEFAULT 1) LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION kinds.atomic(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + 1; END;
CREATE FUNCTION kinds.setof_users() RETURNS SETOF kinds.users LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog AS 'SELECT * FROM kinds.users';
ALTER FUNCTION kinds.setof_users() OWNER TO fx_kinds_owner;

-- Text search.
CREATE TEXT SEARCH DICTIONARY kinds.simple_dict (TEMPLATE = pg_catalog.simple, STOPWORDS = english);
CREATE TEXT SEARCH CONFIGURATION kinds.cfg (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION kinds.cfg ALTER MAPPING FOR word WITH kinds.simple_dict, english_stem;
CREATE TEXT SEARCH TEMPLATE kinds.tmpl (LEXIZE = dsimple_lexize, INIT = dsimple_init);
CREATE TEXT SEARCH PARSER kinds.prs (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype);

-- Foreign data.
CREATE FOREIGN DATA WRAPPER dummy_fdw OPTIONS (debug 'true');
CREATE SERVER remote TYPE 'x' VERSION '1.0' FOREIGN DATA WRAPPER dummy_fdw OPTIONS (host 'example.org');
CREATE USER MAPPING FOR fx_kinds_reader SERVER remote OPTIONS (user 'bob', password 'it''s');
CREATE USER MAPPING FOR PUBLIC SERVER remote;
GRANT USAGE ON FOREIGN SERVER remote TO fx_kinds_reader;
CREATE FOREIGN TABLE kinds.remote_t (id int OPTIONS (column_name 'ID') NOT NULL, v text DEFAULT 'x')
  SERVER remote OPTIONS (table_name 'T');
COMMENT ON SERVER remote IS 'far away';

-- Statistics, event triggers, publications.
CREATE TABLE kinds.stats_t (a int, b int, c text);
CREATE STATISTICS kinds.st_ab (dependencies, ndistinct) ON a, b FROM kinds.stats_t;
CREATE STATISTICS kinds.st_expr ON (a + b), lower(c) FROM kinds.stats_t;
ALTER STATISTICS kinds.st_ab SET STATISTICS 50;
CREATE FUNCTION kinds.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE EVENT TRIGGER kinds_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'DROP TABLE') EXECUTE FUNCTION kinds.on_ddl();
CREATE EVENT TRIGGER kinds_ddl_off ON sql_drop EXECUTE FUNCTION kinds.on_ddl();
ALTER EVENT TRIGGER kinds_ddl_off DISABLE;
CREATE PUBLICATION pub_some FOR TABLE kinds.stats_t (a, b) WHERE (a > 0) WITH (publish = 'insert, update');
CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA ext;
CREATE PUBLICATION pub_all FOR ALL TABLES;

-- Default privileges.
ALTER DEFAULT PRIVILEGES FOR ROLE fx_kinds_owner IN SCHEMA kinds GRANT SELECT ON TABLES TO fx_kinds_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE fx_kinds_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE fx_kinds_owner GRANT USAGE ON TYPES TO fx_kinds_reader;

-- A view/function cycle: v's definition calls f, f takes v's row type.
CREATE VIEW kinds.v AS SELECT 1 AS a, 'x'::varchar(5) COLLATE "C" AS b;
CREATE FUNCTION kinds.f(kinds.v) RETURNS int LANGUAGE sql AS 'SELECT $1.a';
CREATE OR REPLACE VIEW kinds.v WITH (security_barrier) AS
  SELECT 1 AS a, 'x'::varchar(5) COLLATE "C" AS b WHERE kinds.f(NULL::kinds.v) IS NULL;
GRANT SELECT ON kinds.v TO fx_kinds_reader;
COMMENT ON VIEW kinds.v IS 'on a cycle';
CREATE VIEW kinds.v2 AS SELECT a FROM kinds.v;

-- Materialized views over materialized views.
CREATE MATERIALIZED VIEW kinds.mv1 AS SELECT a, b FROM kinds.stats_t;
CREATE MATERIALIZED VIEW kinds.mv2 AS SELECT count(*) AS n FROM kinds.mv1;
CREATE UNIQUE INDEX mv2_n ON kinds.mv2 (n);
CREATE MATERIALIZED VIEW kinds.mv_empty AS SELECT 1 AS x WITH NO DATA;

-- Large objects and database-level settings.
SELECT lo_create(424242);
ALTER LARGE OBJECT 424242 OWNER TO fx_kinds_owner;
GRANT SELECT ON LARGE OBJECT 424242 TO fx_kinds_reader;
COMMENT ON LARGE OBJECT 424242 IS 'a blob';
-- An OID below the first user OID: its comment is not a built-in one's.
SELECT lo_create(5000);
COMMENT ON LARGE OBJECT 5000 IS 'a low blob';
DO $$ BEGIN
  -- An empty list, and a custom setting's name in mixed case.
  EXECUTE format('ALTER DATABASE %I SET temp_tablespaces = %L', current_database(), '');
  EXECUTE format('ALTER DATABASE %I SET "Kinds.Flag" = %L', current_database(), 'On');
  EXECUTE format('ALTER DATABASE %I SET work_mem = %L', current_database(), '8MB');
  EXECUTE format('ALTER DATABASE %I SET search_path = kinds, public, "$user"', current_database());
  EXECUTE format('ALTER ROLE fx_kinds_reader IN DATABASE %I SET statement_timeout = 1000', current_database());
  EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), 'the kinds db');
  EXECUTE format('GRANT CONNECT, TEMP ON DATABASE %I TO fx_kinds_reader', current_database());
END $$;

-- An encoding conversion.
CREATE CONVERSION kinds.latin1_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
COMMENT ON CONVERSION kinds.latin1_to_utf8 IS 'a conversion';

-- Operator families and classes.
CREATE FUNCTION kinds.abs_lt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) < abs($2)';
CREATE FUNCTION kinds.abs_le(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) <= abs($2)';
CREATE FUNCTION kinds.abs_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) = abs($2)';
CREATE FUNCTION kinds.abs_ge(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) >= abs($2)';
CREATE FUNCTION kinds.abs_gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) > abs($2)';
CREATE FUNCTION kinds.abs_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT btint4cmp(abs($1), abs($2))';
CREATE OPERATOR kinds.<< (FUNCTION = kinds.abs_lt, LEFTARG = int, RIGHTARG = int);
CREATE OPERATOR kinds.<<= (FUNCTION = kinds.abs_le, LEFTARG = int, RIGHTARG = int);
CREATE OPERATOR kinds.== (FUNCTION = kinds.abs_eq, LEFTARG = int, RIGHTARG = int);
CREATE OPERATOR kinds.>>= (FUNCTION = kinds.abs_ge, LEFTARG = int, RIGHTARG = int);
CREATE OPERATOR kinds.>> (FUNCTION = kinds.abs_gt, LEFTARG = int, RIGHTARG = int);
CREATE OPERATOR CLASS kinds.abs_ops FOR TYPE int USING btree AS
  OPERATOR 1 kinds.<<, OPERATOR 2 kinds.<<=, OPERATOR 3 kinds.==, OPERATOR 4 kinds.>>=, OPERATOR 5 kinds.>>,
  FUNCTION 1 kinds.abs_cmp(int, int);
CREATE OPERATOR FAMILY kinds.loose_fam USING hash;
ALTER OPERATOR FAMILY kinds.loose_fam USING hash ADD OPERATOR 1 kinds.== (int, int), FUNCTION 1 (int, int) pg_catalog.hashint4(int);
CREATE INDEX stats_abs ON kinds.stats_t (a kinds.abs_ops);

-- A procedural language of our own and a transform.
CREATE TRUSTED LANGUAGE my_plpgsql HANDLER plpgsql_call_handler INLINE plpgsql_inline_handler VALIDATOR plpgsql_validator;
COMMENT ON LANGUAGE my_plpgsql IS 'a copy';
CREATE FUNCTION kinds.in_my_lang() RETURNS int LANGUAGE my_plpgsql AS $$ BEGIN RETURN 1; END $$;
CREATE FUNCTION kinds.celsius_from(internal) RETURNS internal LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE TRANSFORM FOR kinds.celsius LANGUAGE my_plpgsql (FROM SQL WITH FUNCTION kinds.celsius_from(internal));
COMMENT ON TRANSFORM FOR kinds.celsius LANGUAGE my_plpgsql IS 'transform';

-- Comments and privileges on many kinds; a constraint trigger.
COMMENT ON COLLATION kinds.german IS 'collation';
COMMENT ON AGGREGATE kinds.mysum(int) IS 'aggregate';
COMMENT ON OPERATOR kinds.=~= (text, text) IS 'operator';
COMMENT ON OPERATOR kinds.## (NONE, bigint) IS 'prefix';
COMMENT ON CAST (kinds.celsius AS numeric) IS 'cast';
COMMENT ON OPERATOR CLASS kinds.abs_ops USING btree IS 'opclass';
COMMENT ON OPERATOR FAMILY kinds.loose_fam USING hash IS 'opfamily';
COMMENT ON TEXT SEARCH CONFIGURATION kinds.cfg IS 'ts config';
COMMENT ON TEXT SEARCH DICTIONARY kinds.simple_dict IS 'ts dict';
COMMENT ON TEXT SEARCH PARSER kinds.prs IS 'ts parser';
COMMENT ON TEXT SEARCH TEMPLATE kinds.tmpl IS 'ts template';
COMMENT ON FOREIGN DATA WRAPPER dummy_fdw IS 'fdw';
COMMENT ON FOREIGN TABLE kinds.remote_t IS 'foreign table';
COMMENT ON COLUMN kinds.remote_t.v IS 'foreign column';
COMMENT ON EVENT TRIGGER kinds_ddl IS 'event trigger';
COMMENT ON PUBLICATION pub_some IS 'publication';
COMMENT ON STATISTICS kinds.st_ab IS 'statistics';
COMMENT ON PROCEDURE kinds.do_nothing(int) IS 'procedure';
COMMENT ON TYPE kinds.myint IS 'base type';
COMMENT ON TYPE kinds.textrange IS 'range';
COMMENT ON COLUMN kinds.celsius.v IS 'composite attribute';
GRANT USAGE ON LANGUAGE my_plpgsql TO fx_kinds_reader;
GRANT USAGE ON FOREIGN DATA WRAPPER dummy_fdw TO fx_kinds_reader;
GRANT EXECUTE ON PROCEDURE kinds.do_nothing(int) TO fx_kinds_reader;
REVOKE ALL ON FUNCTION kinds.mysum(int) FROM PUBLIC;
GRANT SELECT ON kinds.remote_t TO fx_kinds_reader;
ALTER TEXT SEARCH CONFIGURATION kinds.cfg OWNER TO fx_kinds_owner;
ALTER OPERATOR kinds.=~= (text, text) OWNER TO fx_kinds_owner;
ALTER SERVER remote OWNER TO fx_kinds_owner;
ALTER PUBLICATION pub_some OWNER TO fx_kinds_owner;
CREATE FUNCTION kinds.check_stats() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER stats_check AFTER INSERT OR UPDATE ON kinds.stats_t
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.a IS NOT NULL) EXECUTE FUNCTION kinds.check_stats();
-- Privileges changed on extension members.
GRANT EXECUTE ON FUNCTION ext.citext(character) TO fx_kinds_reader;
REVOKE EXECUTE ON FUNCTION ext.citext(boolean) FROM PUBLIC;
GRANT USAGE ON TYPE ext.citext TO fx_kinds_reader;

-- Ordered-set and moving aggregates, a combine function.
CREATE AGGREGATE kinds.my_pct(float8 ORDER BY anyelement) (STYPE = internal, SFUNC = ordered_set_transition,
  FINALFUNC = percentile_disc_final, FINALFUNC_EXTRA = true, FINALFUNC_MODIFY = read_write);
CREATE AGGREGATE kinds.msum(int) (SFUNC = int4pl, STYPE = int, MSFUNC = int4pl, MINVFUNC = int4mi, MSTYPE = int,
  COMBINEFUNC = int4pl, PARALLEL = RESTRICTED);
CREATE AGGREGATE kinds.nullary(*) (SFUNC = int8inc, STYPE = int8, INITCOND = '0');
CREATE AGGREGATE kinds.my_rank(VARIADIC "any" ORDER BY VARIADIC "any") (STYPE = internal,
  SFUNC = ordered_set_transition_multi, FINALFUNC = rank_final, FINALFUNC_EXTRA, HYPOTHETICAL);
-- A range type with a canonical function (created against its shell).
CREATE TYPE kinds.myr;
CREATE FUNCTION kinds.myr_canon(kinds.myr) RETURNS kinds.myr LANGUAGE internal IMMUTABLE STRICT AS 'int4range_canonical';
CREATE TYPE kinds.myr AS RANGE (subtype = int4, canonical = kinds.myr_canon);
CREATE TABLE kinds.uses_myr (r kinds.myr);
-- A longer cycle through two views and two functions.
CREATE VIEW kinds.ca AS SELECT 1 AS x;
CREATE VIEW kinds.cb AS SELECT 2 AS y;
CREATE FUNCTION kinds.fa(kinds.cb) RETURNS int LANGUAGE sql AS 'SELECT $1.y';
CREATE FUNCTION kinds.fb(kinds.ca) RETURNS int LANGUAGE sql AS 'SELECT $1.x';
CREATE OR REPLACE VIEW kinds.ca AS SELECT 1 AS x WHERE kinds.fa(NULL::kinds.cb) IS NULL;
CREATE OR REPLACE VIEW kinds.cb AS SELECT 2 AS y WHERE kinds.fb(NULL::kinds.ca) IS NULL;
