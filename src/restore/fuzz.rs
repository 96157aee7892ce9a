//! Entry point for fuzzing what a restore parses once the archive reader
//! has authenticated the bytes (`fuzz/fuzz_targets/restore_parse.rs`), and
//! for the in-tree test that runs it over seeds and mutations.
//!
//! Authentication only proves that the holder of a key wrote the bytes, not
//! that they are well formed: a damaged writer or a hostile key holder can
//! put anything in the schema section, the index entries' metadata, the
//! sequence and large object sections, or a manifest. Every such input must
//! end in an error, never a panic, a hang or an unbounded allocation.
//!
//! Not part of the stable API.

use crate::archive::index::Entry;
use crate::backup::{kind, SequenceState, TableMeta};
use crate::filter::Pattern;
use crate::repo::manifest::{rfc3339, Manifest};
use crate::schema::{self, ApplyOptions, SchemaModel, TableRef};

use super::plan::{self, Plan, Sections};
use super::{data, target, units, RestoreOptions};

/// Separates the parts of a plan input: never part of valid UTF-8, so no
/// JSON document contains it.
pub const SEPARATOR: u8 = 0xFF;

/// The mode byte of a plan input (see [`plan_input`]).
pub const MODE_PLAN: u8 = 0;
/// The mode byte of a manifest input.
pub const MODE_MANIFEST: u8 = 4;
/// The mode byte of large object lines.
pub const MODE_LARGE_OBJECTS: u8 = 5;
/// The mode byte of `--table` / `--schema` patterns, one per line.
pub const MODE_PATTERNS: u8 = 6;
/// The mode byte of a sequence section or a table entry's metadata.
pub const MODE_SECTIONS: u8 = 7;

/// Models bigger than this many objects are skipped: planning is
/// quadratic in places (cycle breaking), which is fine for real schemas but
/// would make the fuzzer report slow inputs instead of bugs.
const MAX_OBJECTS: usize = 2000;
/// One-table restores planned per model.
const MAX_TABLE_PLANS: usize = 4;

/// Feeds untrusted bytes to every parser the restore path runs on archive
/// contents, and plans (and generates the DDL of) restores of whatever
/// parses. Must never panic, whatever `data` is.
///
/// The first byte selects a mode (`mode % 8`): 0-3 a plan input (see
/// [`plan_input`]), then manifest JSON, large object lines, name patterns,
/// and sequence/table-entry JSON.
pub fn parse_untrusted(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        MODE_MANIFEST => manifest(rest),
        MODE_LARGE_OBJECTS => {
            for line in rest.split(|&b| b == b'\n') {
                if let Ok((_, _, bytes)) = data::parse_lo_line(line) {
                    // The decoded piece is never longer than its line.
                    assert!(bytes.len() <= line.len());
                }
            }
        }
        MODE_PATTERNS => patterns(rest),
        MODE_SECTIONS => {
            let _ = serde_json::from_slice::<Vec<SequenceState>>(rest);
            let _ = serde_json::from_slice::<TableMeta>(rest);
            binary_copy(rest);
            rewrites(rest);
        }
        _ => {
            plan_bytes(rest);
        }
    }
}

/// Binary COPY data as verify counts it (a table entry's tuples) and as the
/// backup's chunker cuts it (a whole stream), fed in two pieces: the chunks
/// must give back exactly the tuple bytes.
fn binary_copy(data: &[u8]) {
    let mut ends = Vec::new();
    let mut framer = crate::pg::copy::TupleFramer::tuples();
    framer.feed(data, None, &mut ends);
    let cut = data.len() / 3;
    let mut chunker = crate::pg::copy::Chunker::for_format(crate::pg::copy::CopyFormat::Binary, 64);
    let mut out: Vec<u8> = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        for c in chunker.push(piece) {
            assert!(c.data.len() <= 64);
            out.extend_from_slice(&c.data);
        }
    }
    if let Ok(Some(last)) = chunker.finish() {
        out.extend_from_slice(&last.data);
    }
    assert!(out.len() <= data.len());
}

/// Table data as the load rewrites it on its way to the server: padding
/// trimmed from text and binary rows, text converted to binary (kinds
/// chosen by the first bytes), each fed in two pieces.
fn rewrites(data: &[u8]) {
    use crate::pg::copy::CopyFormat;
    use crate::pg::transcode::{Kind, Transcoder};
    use crate::pg::unpad::Unpadder;
    let cut = data.len() / 2;
    for format in [CopyFormat::Text, CopyFormat::Binary] {
        if let Some(mut u) = Unpadder::new(format, &[0, 2]) {
            let mut out = Vec::new();
            u.feed(&data[..cut], &mut out);
            u.feed(&data[cut..], &mut out);
            u.finish(&mut out);
            // Trimming never adds a byte.
            assert!(out.len() <= data.len());
        }
    }
    const KINDS: [u32; 17] = [
        16, 17, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043, 1082, 1114, 1184, 2950, 3802,
    ];
    let kinds: Vec<Kind> = data
        .iter()
        .take(4)
        .filter_map(|b| Kind::from_type_oid(KINDS[usize::from(*b) % KINDS.len()]))
        .collect();
    let mut t = Transcoder::new(kinds, &[1]);
    let mut out = Vec::new();
    if t.feed(&data[..cut], &mut out).is_ok() && t.feed(&data[cut..], &mut out).is_ok() {
        let _ = t.finish();
    }
}

/// How many restore plans a plan input (mode 0-3) produced: lets a test
/// check that its seeds get past parsing instead of silently testing
/// nothing. 0 for other modes.
pub fn plan_count(data: &[u8]) -> usize {
    match data.split_first() {
        Some((&mode, rest)) if mode % 8 < MODE_MANIFEST => plan_bytes(rest),
        _ => 0,
    }
}

/// A plan input: the mode byte, then the schema section, the index
/// entries (JSON array), the sequence section and restore options, each
/// part after a [`SEPARATOR`]. Options are a flag byte (bit 0
/// `--schema-only`, 1 `--data-only`, 2 `--no-owner`, 3 `--no-acl`) and lines
/// `t<pattern>` (`--table`), `s<pattern>` (`--schema`), `i<schema>`
/// (`--into-schema`).
pub fn plan_input(schema: &[u8], entries: &[u8], sequences: &[u8], options: &[u8]) -> Vec<u8> {
    let mut out = vec![MODE_PLAN];
    for (i, part) in [schema, entries, sequences, options].iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.extend_from_slice(part);
    }
    out
}

fn plan_bytes(data: &[u8]) -> usize {
    let mut parts = data.split(|&b| b == SEPARATOR);
    let schema = parts.next().unwrap_or_default();
    let entries_json = parts.next();
    let sequences = parts.next();
    let options = parts.next().unwrap_or_default();

    // Parse the model once to derive per-table plans (and to skip huge
    // ones); the first plan parses it again, as a restore does, the others
    // reuse it (parsing dominated the time per input).
    let Ok(model) = SchemaModel::from_json(schema) else {
        return 0;
    };
    if model.objects.len() > MAX_OBJECTS {
        return 0;
    }
    let entries: Vec<Entry> = match entries_json.map(serde_json::from_slice::<Vec<Entry>>) {
        Some(Ok(e)) => e,
        // Without (valid) entries: one per table, as a backup writes them,
        // so the data side of planning runs on every model the fuzzer makes.
        _ => synthetic_entries(&model),
    };
    let sections = Sections {
        schema,
        sequences,
        entries: &entries,
    };

    let mut runs = vec![RestoreOptions::default(), options_from(options)];
    for t in model.tables.iter().take(MAX_TABLE_PLANS) {
        let exact = format!("{}.{}", quote(&t.schema), quote(&t.name));
        let Ok(p) = Pattern::table(&exact) else {
            continue;
        };
        runs.push(RestoreOptions {
            tables: vec![p.clone()],
            ..Default::default()
        });
        runs.push(RestoreOptions {
            tables: vec![p],
            into_schema: Some("fuzz into".into()),
            schemas: vec![quote(&t.schema)],
            no_owner: true,
            ..Default::default()
        });
    }
    let id = "20261125T000000Z-f022";
    let mut planned = 0;
    let Ok(plan) = plan::build(&sections, id, &runs[0]) else {
        return 0;
    };
    use_plan(&plan, &runs[0]);
    planned += 1;
    // Parsed fine in `build` above.
    let sequences: Vec<SequenceState> = sections
        .sequences
        .and_then(|json| serde_json::from_slice(json).ok())
        .unwrap_or_default();
    for opts in &runs[1..] {
        let plan = plan::build_parsed(model.clone(), sequences.clone(), &entries, id, opts);
        if let Ok(plan) = plan {
            use_plan(&plan, opts);
            planned += 1;
        }
    }

    // The model's own algorithms, as backup and restore use them.
    let refs: Vec<TableRef> = model
        .tables
        .iter()
        .map(|t| TableRef::new(t.schema.clone(), t.name.clone()))
        .collect();
    let closure = model.closure(&refs);
    let sub = model.subset(&closure.objects.iter().copied().collect());
    let _ = sub.validate();
    let _ = schema::order::cycles(&model.objects);
    for t in model.tables.iter().take(MAX_TABLE_PLANS) {
        let _ = model.descendants(t.object_id);
    }
    planned
}

/// Everything a restore derives from a plan without a database: the DDL of
/// every object (retargeted with `--into-schema`), the script `--dry-run`
/// could print, the COPY statements and the units of the data phase.
fn use_plan(plan: &Plan, opts: &RestoreOptions) {
    let mut objects = Vec::new();
    for p in plan.pre_data.iter().chain(&plan.post_data) {
        let o = plan.object(p.id);
        let _ = plan.target_schema(o);
        let _ = target::statements(plan, o, opts, "fuzz \"db\"");
        objects.push(o);
    }
    let _ = schema::sql_script(
        &objects,
        &ApplyOptions {
            target_db_name: "fuzz".into(),
            ..Default::default()
        },
    );
    for t in &plan.tables {
        let _ = data::TableLoad::new(t, plan.model.data_encoding(), Default::default(), false);
    }
    for jobs in [1, 3] {
        let _ = units::units(plan, 1 << 20, jobs);
    }
    let _ = serde_json::to_vec(plan);
}

fn options_from(bytes: &[u8]) -> RestoreOptions {
    let (flags, lines) = bytes.split_first().unwrap_or((&0, &[]));
    let mut o = RestoreOptions {
        schema_only: flags & 1 != 0,
        data_only: flags & 2 != 0,
        no_owner: flags & 4 != 0,
        no_acl: flags & 8 != 0,
        no_database_properties: flags & 16 != 0,
        ..Default::default()
    };
    for line in String::from_utf8_lossy(lines).lines() {
        let mut chars = line.chars();
        let what = chars.next();
        let arg = chars.as_str();
        match what {
            Some('t') => {
                if let Ok(p) = Pattern::table(arg) {
                    o.tables.push(p);
                }
            }
            Some('s') => o.schemas.push(arg.to_string()),
            Some('i') => o.into_schema = Some(arg.to_string()),
            _ => {}
        }
    }
    o
}

/// Index entries as a backup writes them: schema, sequences, one per table
/// with data, large objects. No chunks: planning never reads them.
fn synthetic_entries(model: &SchemaModel) -> Vec<Entry> {
    let entry = |id: u32, kind: &str, meta: serde_json::Value| Entry {
        id,
        kind: kind.to_string(),
        name: None,
        rows: 0,
        raw_bytes: 0,
        meta,
        chunks: vec![],
    };
    let mut out = vec![
        entry(0, kind::SCHEMA, serde_json::Value::Null),
        entry(1, kind::SEQUENCES, serde_json::Value::Null),
    ];
    for t in model.tables.iter().filter(|t| t.has_data) {
        let meta = TableMeta {
            schema: t.schema.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            copy_format: "text".into(),
        };
        let id = out.len() as u32;
        out.push(entry(
            id,
            kind::TABLE,
            serde_json::to_value(meta).unwrap_or_default(),
        ));
    }
    let id = out.len() as u32;
    out.push(entry(id, kind::LARGE_OBJECTS, serde_json::Value::Null));
    out
}

fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::from_json(data) else {
        return;
    };
    // What list, show and restore do with a manifest they read.
    let _ = crate::repo::id_date(&m.id);
    let _ = rfc3339(&m.started_at);
    let _ = rfc3339(&m.finished_at);
    let _ = super::manifest_rows(&m);
    let _ = Manifest::from_json(&m.to_json());
}

fn patterns(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().take(32).collect();
    let names: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for l in &lines {
        if let Ok(p) = Pattern::table(l) {
            for n in &lines {
                let (s, t) = n.split_once('.').unwrap_or(("public", n));
                let _ = p.matches(s, t);
            }
        }
        if let Ok(p) = Pattern::schema(l) {
            let _ = p.matches(l, "");
        }
        // The wanted name is the user's own `--table` argument: only the
        // names it is compared with are hostile.
        if l.len() <= 128 {
            let _ = plan::close_matches(l, &names);
        }
    }
}

/// A name quoted for a pattern (`"` doubled), so it matches exactly.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
