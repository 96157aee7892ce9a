-- Awkward names: mixed case, spaces, quotes, reserved words, 63-byte
-- names, unicode; comments with quotes, backslashes and newlines.
\set ON_ERROR_STOP on
CREATE SCHEMA "My ""Schema"" 1";
CREATE SCHEMA "select";
CREATE SCHEMA "ümlaut_схема";
CREATE TYPE "My ""Schema"" 1"."Type With Space" AS ENUM ('a''b', 'c"d', 'ü');
CREATE TABLE "My ""Schema"" 1"."Table ""Quoted""" (
  "Id" integer PRIMARY KEY,
  "from" text,
  "select" "My ""Schema"" 1"."Type With Space",
  "column with space" int DEFAULT 42,
  "ünïcödé" text
);
CREATE TABLE "select"."table" ("order" int, "group" text, "user" text);
CREATE INDEX "index" ON "select"."table" ("order", "group");
CREATE TABLE "ümlaut_схема"."таблица" ("колонка" text COLLATE "C", "数据" int);
CREATE TABLE public.abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123 (
  abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij456 serial PRIMARY KEY
);
CREATE FUNCTION "select"."Func ""X"""(IN "in" int, "out" OUT int) LANGUAGE sql AS $$ SELECT "in" + 1 $$;
CREATE VIEW "My ""Schema"" 1"."View.Dot" AS SELECT "Id", "from" AS "FROM" FROM "My ""Schema"" 1"."Table ""Quoted""";
COMMENT ON TABLE "select"."table" IS E'back\\slash and ''quote''\nnew line';
COMMENT ON COLUMN "My ""Schema"" 1"."Table ""Quoted"""."column with space" IS 'Комментарий';
COMMENT ON SCHEMA "select" IS '';
CREATE SEQUENCE "select"."seq ""q""" AS smallint;
ALTER TABLE "select"."table" ALTER COLUMN "order" SET DEFAULT nextval('"select"."seq ""q"""');
ALTER SEQUENCE "select"."seq ""q""" OWNED BY "select"."table"."order";
-- An inheritance child needing the catalog fix-ups, with a name that
-- would end a naive dollar quote.
CREATE TABLE "select"."par$pgsnap$ent" (a int, b text);
CREATE TABLE "select"."ki$pgsnap$d" (z int) INHERITS ("select"."par$pgsnap$ent");
ALTER TABLE "select"."par$pgsnap$ent" ADD COLUMN "c$pgsnap$" date;
