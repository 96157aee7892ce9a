//! Table and schema selection as pg_dump spells it: `-t`, `-T`, `-n`, `-N`
//! and `--exclude-table-data` take patterns where `*` and `?` are wildcards,
//! an unquoted name is folded to lower case, a double-quoted part keeps case,
//! spaces and dots, and `schema.table` restricts the schema.

/// One name as SQL reads it (`--into-schema`): folded to lower case unless
/// double-quoted; a dot or wildcard outside quotes is an error, since this
/// names something to create, not a pattern.
pub fn identifier(s: &str) -> Result<String, String> {
    let parts = parse_parts(s)?;
    let [part] = parts.as_slice() else {
        return Err(format!(
            "`{s}` is not one name: quote it if the dot is part of it"
        ));
    };
    let mut out = String::new();
    for t in part {
        match t {
            Tok::Lit(c) => out.push(*c),
            _ => return Err(format!("`{s}` is not a name: quote `*` and `?`")),
        }
    }
    if out.is_empty() {
        return Err("the name is empty".into());
    }
    // The server would cut a longer name to its first 63 bytes (NAMEDATALEN
    // - 1) with only a notice: the schema made would not be the one named.
    if out.len() > MAX_NAME_BYTES {
        return Err(format!(
            "`{s}` is {} bytes long; PostgreSQL names are at most {MAX_NAME_BYTES} bytes",
            out.len()
        ));
    }
    Ok(out)
}

/// The longest name PostgreSQL keeps whole, in bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// How to write one name so a pattern (and SQL) reads it back exactly:
/// as it is when it is all lower case letters, digits and underscores not
/// starting with a digit, double-quoted (inner quotes doubled) otherwise.
pub fn quote_part(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A table's name as `--table` takes it: `app.users`, `app."Order"`,
/// `"Weird Schema"."Order"`.
pub fn spell(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_part(schema), quote_part(name))
}

/// One name part of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Matches any name (an absent schema part).
    Any,
    /// Glob tokens.
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    Star,
    Question,
}

/// A parsed `[schema.]name` pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    schema: Part,
    name: Part,
}

fn parse_parts(s: &str) -> Result<Vec<Vec<Tok>>, String> {
    if s.trim().is_empty() {
        return Err("an empty pattern names nothing: give a name, such as app.users".into());
    }
    // Names are at most 63 bytes; a pattern far longer than two quoted
    // ones matches nothing, and is not echoed back whole.
    if s.len() > 1024 {
        return Err(format!(
            "a pattern of {} bytes is longer than any name it could match",
            s.len()
        ));
    }
    let mut parts = vec![Vec::new()];
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    parts.last_mut().unwrap().push(Tok::Lit('"'));
                } else {
                    quoted = false;
                }
            } else {
                parts.last_mut().unwrap().push(Tok::Lit(c));
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '.' => parts.push(Vec::new()),
            '*' => parts.last_mut().unwrap().push(Tok::Star),
            '?' => parts.last_mut().unwrap().push(Tok::Question),
            // As the server folds an unquoted name in a UTF-8 database:
            // A-Z only; other letters stay as written.
            c => parts
                .last_mut()
                .unwrap()
                .push(Tok::Lit(c.to_ascii_lowercase())),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in pattern `{s}`"));
    }
    Ok(parts)
}

/// Whether `name` matches the glob. Iterative, with one backtracking point
/// (the last `*` seen): a later star can take over any text an earlier one
/// would, so retrying only the last star is enough. O(tokens x chars),
/// where trying every split for every star was exponential in the number
/// of stars (`--table '*a*a*a*a*a*a*a*a*a*a*b'` ran for hours).
fn glob(toks: &[Tok], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    // (token after the last star, name position that star's match ends at)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match toks.get(t) {
            Some(Tok::Star) => {
                t += 1;
                star = Some((t, n));
            }
            Some(Tok::Question) => {
                t += 1;
                n += 1;
            }
            Some(Tok::Lit(c)) if *c == name[n] => {
                t += 1;
                n += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((after, end)) => {
                    t = after;
                    n = end + 1;
                    star = Some((after, end + 1));
                }
                None => return false,
            },
        }
    }
    toks[t..].iter().all(|tok| *tok == Tok::Star)
}

impl Part {
    fn matches(&self, name: &str) -> bool {
        match self {
            Part::Any => true,
            Part::Glob(t) => glob(t, &name.chars().collect::<Vec<_>>()),
        }
    }
}

impl Pattern {
    /// A table pattern: `name`, `schema.name`, with wildcards and quotes.
    pub fn table(s: &str) -> Result<Pattern, String> {
        let mut parts = parse_parts(s)?;
        let (schema, name) = match parts.len() {
            1 => (Part::Any, Part::Glob(parts.pop().unwrap())),
            2 => {
                let n = parts.pop().unwrap();
                (Part::Glob(parts.pop().unwrap()), Part::Glob(n))
            }
            _ => {
                return Err(format!(
                    "pattern `{s}` has too many dotted parts: use schema.table (quote names that \
                     contain dots)"
                ))
            }
        };
        Ok(Pattern {
            text: s.to_string(),
            schema,
            name,
        })
    }

    /// A schema pattern: one name part.
    pub fn schema(s: &str) -> Result<Pattern, String> {
        let mut parts = parse_parts(s)?;
        if parts.len() != 1 {
            return Err(format!(
                "schema pattern `{s}` contains a dot: quote the name if the dot is part of it"
            ));
        }
        Ok(Pattern {
            text: s.to_string(),
            schema: Part::Glob(parts.pop().unwrap()),
            name: Part::Any,
        })
    }

    pub fn matches(&self, schema: &str, name: &str) -> bool {
        self.schema.matches(schema) && self.name.matches(name)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Which tables a backup covers, and which of them without data.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    pub include_tables: Vec<Pattern>,
    pub exclude_tables: Vec<Pattern>,
    pub include_schemas: Vec<Pattern>,
    pub exclude_schemas: Vec<Pattern>,
    pub exclude_data: Vec<Pattern>,
}

impl TableFilter {
    pub fn is_empty(&self) -> bool {
        self.include_tables.is_empty()
            && self.exclude_tables.is_empty()
            && self.include_schemas.is_empty()
            && self.exclude_schemas.is_empty()
            && self.exclude_data.is_empty()
    }

    /// Whether the schema is selected at all (objects other than tables).
    pub fn schema_selected(&self, schema: &str) -> bool {
        if self.exclude_schemas.iter().any(|p| p.matches(schema, "")) {
            return false;
        }
        self.include_schemas.is_empty()
            || self.include_schemas.iter().any(|p| p.matches(schema, ""))
    }

    /// Whether a relation's definition is backed up: a table, view,
    /// materialized view, sequence or foreign table, as pg_dump's `-t` and
    /// `-T` take them. As in pg_dump, `--schema` and `--exclude-schema` have
    /// no effect on what `--table` chose: a table named is a table wanted.
    pub fn table_selected(&self, schema: &str, name: &str) -> bool {
        if self.exclude_tables.iter().any(|p| p.matches(schema, name)) {
            return false;
        }
        if !self.include_tables.is_empty() {
            return self.include_tables.iter().any(|p| p.matches(schema, name));
        }
        self.schema_selected(schema)
    }

    /// Whether the backup keeps large objects: as pg_dump, unless it names
    /// what it wants (`--table`, `--schema`).
    pub fn keeps_large_objects(&self) -> bool {
        self.include_tables.is_empty() && self.include_schemas.is_empty()
    }

    /// Whether a selected table's rows are backed up.
    pub fn data_selected(&self, schema: &str, name: &str) -> bool {
        self.table_selected(schema, name)
            && !self.exclude_data.iter().any(|p| p.matches(schema, name))
    }

    /// Include patterns that matched none of `tables`: almost always a typo,
    /// so the backup refuses them as pg_dump's --strict-names would.
    pub fn unmatched_includes<'a>(&'a self, tables: &[(String, String)]) -> Vec<&'a str> {
        self.include_tables
            .iter()
            .filter(|p| !tables.iter().any(|(s, n)| p.matches(s, n)))
            .map(|p| p.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fold_unless_quoted() {
        assert_eq!(identifier("Restored").unwrap(), "restored");
        assert_eq!(identifier("\"Weird Schema\"").unwrap(), "Weird Schema");
        assert_eq!(identifier("\"a.b\"").unwrap(), "a.b");
        assert!(identifier("a.b").is_err());
        assert!(identifier("a*").is_err());
        assert!(identifier("\"\"").is_err());
        // 63 bytes are kept whole; 64 would be cut by the server.
        assert!(identifier(&"s".repeat(63)).is_ok());
        assert!(identifier(&"s".repeat(64)).is_err());
        assert!(identifier(&format!("\"{}\"", "é".repeat(32))).is_err());
    }

    #[test]
    fn spelled_names_select_exactly_themselves() {
        let names = [
            ("app", "users"),
            ("app", "Order"),
            ("Weird Schema", "Order"),
            ("s", "has.dot"),
            ("s", "star*and?"),
            ("s", "quote\"inside"),
            ("s", "1starts_with_digit"),
            ("s", "ünïcode"),
        ];
        for (schema, name) in names {
            let spelled = spell(schema, name);
            let p = Pattern::table(&spelled).unwrap();
            for (s2, n2) in names {
                assert_eq!(
                    p.matches(s2, n2),
                    (s2, n2) == (schema, name),
                    "{spelled} against {s2}.{n2}"
                );
            }
        }
        assert_eq!(spell("app", "users"), "app.users");
        assert_eq!(spell("app", "Order"), "app.\"Order\"");
    }

    #[test]
    fn only_ascii_letters_fold() {
        let p = Pattern::table("ÜNÏ.Child").unwrap();
        assert!(p.matches("ÜnÏ", "child"));
        assert!(!p.matches("ünï", "child"));
        assert_eq!(identifier("ÉTÉ").unwrap(), "ÉtÉ");
    }

    #[test]
    fn patterns_fold_case_unless_quoted() {
        let p = Pattern::table("App.Users").unwrap();
        assert!(p.matches("app", "users"));
        assert!(!p.matches("App", "Users"));
        let q = Pattern::table("\"Weird Schema\".\"Order\"").unwrap();
        assert!(q.matches("Weird Schema", "Order"));
        assert!(!q.matches("weird schema", "order"));
        let d = Pattern::table("\"a.b\"").unwrap();
        assert!(d.matches("public", "a.b"));
        assert!(Pattern::table("a.b.c").is_err());
        assert!(Pattern::table("\"open").is_err());
    }

    #[test]
    fn empty_and_overlong_patterns_are_refused_without_an_echo() {
        for empty in ["", "  "] {
            assert!(Pattern::table(empty).unwrap_err().contains("empty pattern"));
            assert!(Pattern::schema(empty)
                .unwrap_err()
                .contains("empty pattern"));
        }
        let long = "x".repeat(100_000);
        let e = Pattern::table(&long).unwrap_err();
        assert!(e.contains("100000 bytes") && e.len() < 200, "{e}");
    }

    #[test]
    fn wildcards() {
        let p = Pattern::table("app.user*").unwrap();
        assert!(p.matches("app", "users"));
        assert!(p.matches("app", "user"));
        assert!(!p.matches("other", "users"));
        let q = Pattern::table("t?").unwrap();
        assert!(q.matches("any", "t1"));
        assert!(!q.matches("any", "t12"));
        assert!(Pattern::table("*.*").unwrap().matches("x", "y"));
    }

    #[test]
    fn filter_combines_includes_and_excludes() {
        let f = TableFilter {
            include_schemas: vec![Pattern::schema("app").unwrap()],
            exclude_tables: vec![Pattern::table("app.audit_*").unwrap()],
            exclude_data: vec![Pattern::table("app.sessions").unwrap()],
            ..Default::default()
        };
        assert!(f.table_selected("app", "users"));
        assert!(!f.table_selected("app", "audit_log"));
        assert!(!f.table_selected("public", "users"));
        assert!(f.table_selected("app", "sessions"));
        assert!(!f.data_selected("app", "sessions"));
        let tables = vec![("app".to_string(), "users".to_string())];
        let g = TableFilter {
            include_tables: vec![Pattern::table("nope").unwrap()],
            ..Default::default()
        };
        assert_eq!(g.unmatched_includes(&tables), vec!["nope"]);
        assert!(!g.keeps_large_objects());
        assert!(!f.keeps_large_objects());
        assert!(TableFilter::default().keeps_large_objects());
    }

    /// As pg_dump: `-n`/`-N` have no effect on what `-t` chose; `-T` does.
    #[test]
    fn schema_filters_do_not_narrow_table_choices() {
        let f = TableFilter {
            include_tables: vec![Pattern::table("app.*").unwrap()],
            exclude_tables: vec![Pattern::table("app.audit").unwrap()],
            exclude_schemas: vec![Pattern::schema("app").unwrap()],
            include_schemas: vec![Pattern::schema("other").unwrap()],
            ..Default::default()
        };
        assert!(f.table_selected("app", "users"));
        assert!(!f.table_selected("app", "audit"));
        assert!(!f.table_selected("other", "users"));
        let g = TableFilter {
            exclude_tables: vec![Pattern::table("nosuch").unwrap()],
            ..Default::default()
        };
        assert!(g.table_selected("public", "t"));
        assert!(g.keeps_large_objects());
    }
}

#[cfg(test)]
mod glob_speed {
    use super::*;

    /// The obvious (exponential) definition, as a reference.
    fn reference(toks: &[Tok], name: &[char]) -> bool {
        match toks.split_first() {
            None => name.is_empty(),
            Some((Tok::Star, rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((Tok::Question, rest)) => !name.is_empty() && reference(rest, &name[1..]),
            Some((Tok::Lit(c), rest)) => name.first() == Some(c) && reference(rest, &name[1..]),
        }
    }

    /// Every string up to `max` long over `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<Vec<char>> {
        let mut out = vec![vec![]];
        let mut last = vec![vec![]];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s: &Vec<char>| {
                    alphabet.iter().map(move |c| {
                        let mut s = s.clone();
                        s.push(*c);
                        s
                    })
                })
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn agrees_with_the_reference_on_all_small_inputs() {
        let tok = |c: char| match c {
            '*' => Tok::Star,
            '?' => Tok::Question,
            c => Tok::Lit(c),
        };
        let names = strings(&['a', 'b'], 5);
        for p in strings(&['a', 'b', '*', '?'], 5) {
            let toks: Vec<Tok> = p.iter().map(|&c| tok(c)).collect();
            for n in &names {
                assert_eq!(glob(&toks, n), reference(&toks, n), "{p:?} {n:?}");
            }
        }
    }

    #[test]
    fn many_stars_match_in_polynomial_time() {
        let p = Pattern::table(&format!("{}b", "*a".repeat(12))).unwrap();
        let t = std::time::Instant::now();
        assert!(!p.matches("s", &"a".repeat(40)));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
    }
}
