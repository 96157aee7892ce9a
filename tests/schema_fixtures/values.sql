-- Values that only a careful COPY round trip keeps: blank-padded
-- character(n), whose padding restore leaves for the server to add back
-- (src/pg/unpad.rs), and the types restore may send to the server in
-- binary, at their edges. restore_exact.rs runs it with the database's
-- time zone set to one with half-hour and local-mean-time offsets.
CREATE SCHEMA vals;
CREATE DOMAIN vals.code AS character(4);
CREATE TABLE vals.padded (id int PRIMARY KEY, c1 char(1), c5 character(5), c84 char(84),
  bp bpchar, vc varchar(10), arr char(3)[], code vals.code);
INSERT INTO vals.padded VALUES
  (1, 'a', 'ab', '', 'x  ', 'y  ', '{a,"b "}', 'ab'),
  (2, ' ', '    ', repeat(' ', 84), '  ', '', NULL, ''),
  (3, NULL, E'a\\', E'tab\there', E'\\ ', E'nl\n', '{}', NULL),
  (4, 'é', 'ééé', 'end', 'é  ', 'é', '{"é  "}', 'é'),
  (5, E'\t', E' a ', E'x\\  ', '', ' ', NULL, E'\\');
CREATE TABLE vals.typed (id int PRIMARY KEY, b bool, by bytea, i2 int2, i4 int4, i8 int8,
  t text, o oid, j json, f4 float4, f8 float8, d date, ts timestamp, tz timestamptz,
  u uuid, jb jsonb);
INSERT INTO vals.typed VALUES
  (1, true, '\xdeadbeef', -32768, -2147483648, -9223372036854775808,
   E'tab\t nl\n cr\r bs\\ bell\x07 ff\f vt\v', 4294967295, '{"a": [1, 2.50, "x"]}',
   1.4e-45, 5e-324, '4713-01-01 BC', '294276-12-31 23:59:59.999999', '1900-01-01 00:00:00+00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"z": 1, "a": [true, null]}'),
  (2, false, '', 32767, 2147483647, 9223372036854775807, '', 0, 'null', 'NaN', '-Infinity',
   'infinity', '-infinity', 'infinity', NULL, '"str"'),
  (3, NULL, '\x00', 0, 0, 0, 'é ü 日本 \', 1, E'  {"ws":\ttrue}  ', '-0', '-0', '2000-01-01',
   '2000-01-01 00:00:00', '1883-11-18 12:00:00+00', '00000000-0000-0000-0000-000000000000', '[]'),
  (4, true, decode(repeat('00ff', 300), 'hex'), -1, -1, -1, repeat('long ', 2000), 42, '1e400',
   3.4028235e+38, 1.7976931348623157e+308, '0001-01-01 BC', '0001-01-01 00:00:00 BC',
   '1970-01-01 00:00:00.000001+00', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"n": 1e-400}'),
  (5, false, '\x5c78', 1, 1, 1, '\N', 2, '"\u00e9\n"', 0.1, 0.1, '2024-02-29', '2024-02-29 12:34:56.5',
   '2026-07-01 12:00:00.123+00', NULL, '{"k": "v\\t"}'),
  (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (7, true, '\x', 7, 7, 7, 'x', 7, '7', 'Infinity', 123456789.123456789, '5874897-12-31',
   '1999-12-31 23:59:59.999999', '1900-01-01 00:00:00.5-03:30', NULL, '7');
-- Types restore leaves in text: numeric, interval, arrays, a range.
CREATE TABLE vals.texty (id int, n numeric, iv interval, a int[], r int4range);
INSERT INTO vals.texty VALUES (1, 'NaN', '1 year -2 days 03:04:05.5', '{1,NULL,3}', '[1,5)'),
  (2, 1.50, NULL, '{}', 'empty');
-- OID alias types: their binary form is a bare OID, which names another
-- object (or none) in the restored database; a backup keeps them as text.
CREATE FUNCTION vals.f(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
CREATE TABLE vals.aliases (id int PRIMARY KEY, c regclass, t regtype, p regprocedure,
  n regnamespace, cs regclass[]);
INSERT INTO vals.aliases VALUES
  (1, 'vals.padded', 'vals.code', 'vals.f(int)', 'vals', '{vals.typed,vals.texty}'),
  (2, 'pg_class', 'int4', 'lower(text)', 'pg_catalog', NULL);
