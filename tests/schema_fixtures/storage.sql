-- Tablespaces and table access methods. The test creates the tablespace
-- fx_space (cluster-wide) before loading this file.
\set ON_ERROR_STOP on
CREATE SCHEMA st;
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
COMMENT ON ACCESS METHOD heap2 IS 'heap again';
CREATE TABLE st.in_space (id int PRIMARY KEY USING INDEX TABLESPACE fx_space, v text) TABLESPACE fx_space;
CREATE INDEX in_space_v ON st.in_space (v) TABLESPACE fx_space;
CREATE TABLE st.other_am (id int, v text) USING heap2;
CREATE MATERIALIZED VIEW st.mv USING heap2 TABLESPACE fx_space AS SELECT id FROM st.other_am;
CREATE TABLE st.parted (id int) PARTITION BY RANGE (id) TABLESPACE fx_space;
CREATE TABLE st.parted_1 PARTITION OF st.parted FOR VALUES FROM (0) TO (10);
