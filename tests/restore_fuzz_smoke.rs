//! Runs the restore path's fuzz entry point (`pgsnap::restore::fuzz`) over
//! real schema sections and many random and structure-aware mutations, so
//! CI exercises the parsing and planning of hostile archive contents
//! without cargo-fuzz. Any panic fails the test.

use pgsnap::restore::fuzz::{
    parse_untrusted, plan_count, plan_input, MODE_LARGE_OBJECTS, MODE_MANIFEST, MODE_PATTERNS,
    MODE_SECTIONS,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const SEEDS: [&str; 3] = ["basics", "names", "edge"];

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/vectors/restore/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (schema, entries, sequences) of a real backup (tests/vectors/restore,
/// extracted from backups of tests/schema_fixtures).
fn seed(name: &str) -> [Vec<u8>; 3] {
    [
        vector(&format!("{name}.schema.json")),
        vector(&format!("{name}.entries.json")),
        vector(&format!("{name}.sequences.json")),
    ]
}

#[test]
fn real_schema_sections_plan() {
    for name in SEEDS {
        let [schema, entries, seqs] = seed(name);
        // Full restore, the given options, and per-table restores (with and
        // without --into-schema) all plan on a real model.
        let n = plan_count(&plan_input(&schema, &entries, &seqs, b""));
        assert!(n > 2, "{name}: only {n} plans");
        for options in [&b"\x01"[..], b"\x02", b"\x0c", b"\x00tnope", b"\x00s*\ni x"] {
            parse_untrusted(&plan_input(&schema, &entries, &seqs, options));
        }
    }
}

/// Replaces a random node of `v` with a hostile value of plausible type:
/// out-of-range ids, huge numbers, empty and odd names, dropped or
/// duplicated list items. Returns false when nothing was changed.
fn mutate(v: &mut Value, rng: &mut impl Rng, depth: u32) -> bool {
    let descend = depth < 12 && rng.gen_bool(0.8);
    match v {
        Value::Array(items) if !items.is_empty() && descend => {
            let i = rng.gen_range(0..items.len());
            mutate(&mut items[i], rng, depth + 1)
        }
        Value::Object(map) if !map.is_empty() && descend => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = keys.choose(rng).unwrap();
            if rng.gen_bool(0.05) {
                map.remove(k);
                return true;
            }
            mutate(map.get_mut(k).unwrap(), rng, depth + 1)
        }
        Value::Array(items) => {
            match rng.gen_range(0..4) {
                0 if !items.is_empty() => {
                    let i = rng.gen_range(0..items.len());
                    items.remove(i);
                }
                1 if !items.is_empty() => {
                    let i = rng.gen_range(0..items.len());
                    let dup = items[i].clone();
                    items.push(dup);
                }
                2 => items.shuffle(rng),
                _ => items.clear(),
            }
            true
        }
        Value::Number(_) => {
            *v = match rng.gen_range(0..7) {
                0 => Value::from(0),
                1 => Value::from(u32::MAX),
                2 => Value::from(u64::MAX),
                3 => Value::from(-1),
                4 => Value::from(i64::MAX),
                5 => Value::from(1.5e300),
                _ => Value::from(rng.gen_range(0..40)),
            };
            true
        }
        Value::String(_) => {
            let weird = [
                "",
                "\"",
                "a.b",
                ".",
                "$pgsnap$",
                "@@PGSNAP_TARGET_DATABASE@@",
                "public",
                "\u{0}",
                "é\u{301}ß\u{10FFFF}",
                "schema_only",
                "post_data",
                "table",
                "index",
                "foreign_key",
                "sequence_owned_by",
            ];
            *v = Value::from(*weird.choose(rng).unwrap());
            true
        }
        Value::Bool(b) => {
            *b = !*b;
            true
        }
        Value::Null => {
            *v = if rng.gen() {
                Value::from(1)
            } else {
                Value::from("x")
            };
            true
        }
        _ => false,
    }
}

#[test]
fn hostile_but_well_typed_sections_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED_2E57);
    let (mut planned, mut total) = (0, 0);
    for name in SEEDS {
        let parts = seed(name);
        let values: Vec<Value> = parts
            .iter()
            .map(|p| serde_json::from_slice(p).unwrap())
            .collect();
        for round in 0..300 {
            let mut vs = values.clone();
            // Mostly the schema section, sometimes the entries or sequences.
            for _ in 0..rng.gen_range(1..5) {
                let which = match rng.gen_range(0..10) {
                    0..=6 => 0,
                    7 | 8 => 1,
                    _ => 2,
                };
                mutate(&mut vs[which], &mut rng, 0);
            }
            let bytes: Vec<Vec<u8>> = vs.iter().map(|v| serde_json::to_vec(v).unwrap()).collect();
            let options: &[u8] = match round % 4 {
                0 => b"",
                1 => b"\x01",
                2 => b"\x04t*\ni elsewhere",
                _ => b"\x02s*",
            };
            let input = plan_input(&bytes[0], &bytes[1], &bytes[2], options);
            parse_untrusted(&input);
            planned += usize::from(plan_count(&input) > 0);
            total += 1;
        }
    }
    // Most mutations keep the model parseable, so planning really runs on
    // hostile content (rather than every input stopping at the parser).
    assert!(
        planned * 4 > total,
        "only {planned} of {total} inputs planned"
    );
}

#[test]
fn random_bytes_in_every_mode_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xB17E5);
    let manifest = vector("basics.manifest.json");
    let [schema, entries, seqs] = seed("basics");
    let plan = plan_input(&schema, &entries, &seqs, b"\x00tpublic.*");
    let lo = b"16401\t0\t48656c6c6f\n16401\t5\t\n16402\t0\t00ff\n".to_vec();
    let pats = b"app.users\n\"Weird\"\".x\".\"t\"\n*.*\n?*?*?*?*?*?*?*?*\n\"open".to_vec();
    let seqs_meta =
        br#"[{"schema":"s","name":"q","last_value":-9223372036854775808,"is_called":true}]"#
            .to_vec();
    let seeds: Vec<Vec<u8>> = vec![
        plan,
        [&[MODE_MANIFEST][..], &manifest].concat(),
        [&[MODE_LARGE_OBJECTS][..], &lo].concat(),
        [&[MODE_PATTERNS][..], &pats].concat(),
        [&[MODE_SECTIONS][..], &seqs_meta].concat(),
    ];
    for s in &seeds {
        parse_untrusted(s);
    }
    for i in 0..3000 {
        let mut d = if i % 5 == 0 {
            let n = rng.gen_range(0..300);
            (0..n).map(|_| rng.gen()).collect::<Vec<u8>>()
        } else {
            seeds[i % seeds.len()].clone()
        };
        for _ in 0..rng.gen_range(1..6) {
            if d.is_empty() {
                break;
            }
            let p = rng.gen_range(0..d.len());
            match rng.gen_range(0..4) {
                0 => d[p] ^= 1 << rng.gen_range(0..8),
                1 => d.truncate(p.max(1)),
                2 => d[p] = rng.gen(),
                _ => {
                    let b: u8 = *b"0123456789-.\"*\t\n{}[],:".choose(&mut rng).unwrap();
                    d.insert(p, b);
                }
            }
        }
        parse_untrusted(&d);
    }
}
