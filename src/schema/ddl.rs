//! Building blocks of the DDL text: quoting, qualified names, ownership,
//! privileges, comments, and the data-phase COPY statements.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::Deserialize;

use super::model::TableInfo;

/// `"name"`, always quoted.
pub fn ident(name: &str) -> String {
    escape_identifier(name)
}

/// `'text'` (an `E''` literal when it holds backslashes).
pub fn literal(text: &str) -> String {
    escape_literal(text)
}

/// `$tag$text$tag$` with a tag that does not occur in `text`.
pub fn dollar_quote(text: &str) -> String {
    let mut tag = String::from("pgsnap");
    while text.contains(&format!("${tag}$")) {
        tag.push('_');
    }
    format!("${tag}${text}${tag}$")
}

/// `"schema"."name"`.
pub fn qualify(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A role name as a grantee or owner (`PUBLIC` for none).
pub fn role(name: Option<&str>) -> String {
    match name {
        Some(n) => ident(n),
        None => "PUBLIC".to_string(),
    }
}

/// `ALTER <target> OWNER TO "role";`
pub fn owner_to(alter_target: &str, owner: &str) -> String {
    format!("ALTER {alter_target} OWNER TO {};", ident(owner))
}

/// `COMMENT ON <target> IS '...';`
pub fn comment_on(target: &str, text: &str) -> String {
    format!("COMMENT ON {target} IS {};", literal(text))
}

/// `SECURITY LABEL FOR provider ON <target> IS '...';`
pub fn security_label(target: &str, provider: &str, label: &str) -> String {
    format!(
        "SECURITY LABEL FOR {} ON {target} IS {};",
        ident(provider),
        literal(label)
    )
}

/// One privilege of an ACL, as `aclexplode` returns it (in item order).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AclEntry(
    /// Grantee, `None` for PUBLIC.
    pub Option<String>,
    /// Grantor.
    pub String,
    /// Privilege keyword (`SELECT`, `USAGE`, ...).
    pub String,
    /// Grantable.
    pub bool,
);

/// Parse the JSON array the catalog queries build with [`acl_json_sql`].
pub fn parse_acl(json: Option<&str>) -> Option<Vec<AclEntry>> {
    json.map(|j| serde_json::from_str(j).unwrap_or_default())
}

/// SQL expression turning the aclitem[] expression `col` into a JSON array
/// of `[grantee, grantor, privilege, grantable]` (NULL when `col` is NULL).
pub fn acl_json_sql(col: &str) -> String {
    format!(
        "CASE WHEN {col} IS NULL THEN NULL ELSE COALESCE((SELECT \
         pg_catalog.json_agg(pg_catalog.json_build_array(CASE WHEN a.grantee = 0 THEN NULL \
         ELSE pg_catalog.pg_get_userbyid(a.grantee) END, pg_catalog.pg_get_userbyid(a.grantor), \
         a.privilege_type, a.is_grantable) ORDER BY a.ord) FROM pg_catalog.aclexplode({col}) \
         WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, ord)), '[]'::pg_catalog.json)::text END"
    )
}

/// Group consecutive entries into ACL items (same grantee and grantor),
/// each with its plain and grantable privileges.
/// One ACL item: grantee, grantor, plain privileges, grantable privileges.
type AclItem = (Option<String>, String, Vec<String>, Vec<String>);

fn items(entries: &[AclEntry]) -> Vec<AclItem> {
    let mut out: Vec<AclItem> = Vec::new();
    for AclEntry(grantee, grantor, privilege, grantable) in entries {
        let same = matches!(out.last(), Some((g, r, _, _)) if g == grantee && r == grantor);
        if !same {
            out.push((grantee.clone(), grantor.clone(), Vec::new(), Vec::new()));
        }
        let last = out.last_mut().unwrap();
        if *grantable {
            last.3.push(privilege.clone());
        } else {
            last.2.push(privilege.clone());
        }
    }
    out
}

/// GRANT statements recreating `entries` in order (each item granted by its
/// grantor: `SET ROLE` when the grantor is not the owner). `on` is the
/// privilege target (`TABLE "s"."t"`), `cols` a column list for column
/// privileges (`("c")`) or empty.
fn grants(on: &str, cols: &str, owner: Option<&str>, entries: &[AclEntry]) -> Vec<String> {
    let mut out = Vec::new();
    for (grantee, grantor, plain, grantable) in items(entries) {
        let mut sql = String::new();
        let as_other = owner != Some(grantor.as_str());
        if as_other {
            sql.push_str(&format!("SET ROLE {}; ", ident(&grantor)));
        }
        let to = role(grantee.as_deref());
        if !plain.is_empty() {
            let p: Vec<String> = plain.iter().map(|p| format!("{p}{cols}")).collect();
            sql.push_str(&format!("GRANT {} ON {on} TO {to};", p.join(", ")));
        }
        if !grantable.is_empty() {
            if !plain.is_empty() {
                sql.push(' ');
            }
            let p: Vec<String> = grantable.iter().map(|p| format!("{p}{cols}")).collect();
            sql.push_str(&format!(
                "GRANT {} ON {on} TO {to} WITH GRANT OPTION;",
                p.join(", ")
            ));
        }
        if as_other {
            sql.push_str(" RESET ROLE;");
        }
        out.push(sql);
    }
    out
}

/// Statements giving an object exactly the ACL `entries`: everything the
/// defaults grant is revoked first, then every item is granted in order, so
/// the restored aclitem[] is the same array (order included).
pub fn acl_statements(
    on: &str,
    owner: Option<&str>,
    entries: &Option<Vec<AclEntry>>,
) -> Vec<String> {
    let Some(entries) = entries else {
        return Vec::new();
    };
    let mut out = vec![format!("REVOKE ALL ON {on} FROM PUBLIC;")];
    if let Some(o) = owner {
        out.push(format!("REVOKE ALL ON {on} FROM {};", ident(o)));
    }
    out.extend(grants(on, "", owner, entries));
    out
}

/// Column privileges (`GRANT SELECT ("c") ON TABLE ...`); columns start
/// with no ACL, so no revokes are needed.
pub fn column_acl_statements(
    table_on: &str,
    column: &str,
    owner: Option<&str>,
    entries: &Option<Vec<AclEntry>>,
) -> Vec<String> {
    match entries {
        Some(e) => grants(table_on, &format!(" ({})", ident(column)), owner, e),
        None => Vec::new(),
    }
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE r [IN SCHEMA s]`.
pub fn default_acl_prefix(for_role: &str, schema: Option<&str>) -> String {
    match schema {
        Some(s) => format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {}",
            ident(for_role),
            ident(s)
        ),
        None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", ident(for_role)),
    }
}

/// The pg_default_acl object type letter's keyword (`r` -> `TABLES`).
pub fn default_acl_objtype(letter: &str) -> Option<&'static str> {
    Some(match letter {
        "r" => "TABLES",
        "S" => "SEQUENCES",
        "f" => "FUNCTIONS",
        "T" => "TYPES",
        "n" => "SCHEMAS",
        _ => return None,
    })
}

/// `ALTER DEFAULT PRIVILEGES` statements recreating a pg_default_acl entry.
/// `global` entries replace the built-in defaults (revoked first); per-schema
/// entries add to them.
pub fn default_acl_statements(
    for_role: &str,
    schema: Option<&str>,
    objtype: &str,
    entries: &[AclEntry],
) -> Vec<String> {
    let prefix = default_acl_prefix(for_role, schema);
    let mut out = Vec::new();
    if schema.is_none() {
        out.push(format!("{prefix} REVOKE ALL ON {objtype} FROM PUBLIC;"));
        out.push(format!(
            "{prefix} REVOKE ALL ON {objtype} FROM {};",
            ident(for_role)
        ));
    }
    for (grantee, _grantor, plain, grantable) in items(entries) {
        let to = role(grantee.as_deref());
        if !plain.is_empty() {
            out.push(format!(
                "{prefix} GRANT {} ON {objtype} TO {to};",
                plain.join(", ")
            ));
        }
        if !grantable.is_empty() {
            out.push(format!(
                "{prefix} GRANT {} ON {objtype} TO {to} WITH GRANT OPTION;",
                grantable.join(", ")
            ));
        }
    }
    out
}

/// `(opt=value, ...)` from a reloptions-style text[] (`name=value` items).
pub fn options_list(opts: &[String]) -> String {
    let parts: Vec<String> = opts
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => format!("{k}={}", literal(v)),
            None => o.clone(),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// `OPTIONS (name 'value', ...)` from an FDW options text[].
pub fn fdw_options(opts: &[String]) -> String {
    let parts: Vec<String> = opts
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => format!("{} {}", ident(k), literal(v)),
            None => ident(o),
        })
        .collect();
    format!("OPTIONS ({})", parts.join(", "))
}

/// `COPY "s"."t" ("a", "b") TO STDOUT` for the data phase (always with the
/// column list, except for a table without columns).
pub fn copy_out_sql(t: &TableInfo) -> String {
    format!(
        "COPY {}{} TO STDOUT",
        qualify(&t.schema, &t.name),
        column_list(&t.columns)
    )
}

/// `COPY "s"."t" ("a", "b") FROM STDIN` for the data phase.
pub fn copy_in_sql(t: &TableInfo) -> String {
    format!(
        "COPY {}{} FROM STDIN",
        qualify(&t.schema, &t.name),
        column_list(&t.columns)
    )
}

/// `("a", "b")`, or nothing for a table without columns (COPY then moves
/// rows with no columns, which is what the table holds).
fn column_list(cols: &[String]) -> String {
    if cols.is_empty() {
        return String::new();
    }
    let c: Vec<String> = cols.iter().map(|c| ident(c)).collect();
    format!(" ({})", c.join(", "))
}

/// The roles a privilege or ownership statement built here names: the
/// quoted identifier right after `TO`, `FROM` or `ROLE` (grantee, revokee,
/// new owner, `SET ROLE` grantor, `FOR ROLE` of default privileges). Object
/// names are quoted too, so keywords are only looked for outside quotes,
/// and a name like `"x TO ""y"""` cannot be mistaken for a role.
pub fn roles_named(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    // The last word when nothing but spaces followed it.
    let mut keyword = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            keyword = matches!(word.to_ascii_uppercase().as_str(), "TO" | "FROM" | "ROLE");
            word.clear();
        }
        match c {
            '"' => {
                let mut name = String::new();
                while let Some(q) = chars.next() {
                    if q == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    name.push(q);
                }
                if keyword {
                    out.push(name);
                }
                keyword = false;
            }
            '\'' => {
                while let Some(q) = chars.next() {
                    if q == '\'' && chars.next_if_eq(&'\'').is_none() {
                        break;
                    }
                }
                keyword = false;
            }
            c if c.is_whitespace() => {}
            _ => keyword = false,
        }
    }
    out
}

/// The roles a `CREATE POLICY` (its `TO` list) or `CREATE USER MAPPING`
/// (its `FOR`) statement the catalog reader wrote names; `PUBLIC` is not a
/// role. Every name before the list is quoted, so the first bare keyword
/// begins it; a policy's roles are `quote_ident`'s: bare when they need no
/// quotes.
pub fn roles_listed(create: &str) -> Vec<String> {
    let keyword = if create.starts_with("CREATE USER MAPPING ") {
        "FOR"
    } else {
        "TO"
    };
    fn quoted(chars: &mut std::iter::Peekable<std::str::Chars>) -> String {
        let mut name = String::new();
        while let Some(q) = chars.next() {
            if q == '"' && chars.next_if_eq(&'"').is_none() {
                break;
            }
            name.push(q);
        }
        name
    }
    let mut chars = create.chars().peekable();
    let mut word = String::new();
    loop {
        let Some(c) = chars.next() else {
            return vec![];
        };
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if word.eq_ignore_ascii_case(keyword) {
            break;
        }
        word.clear();
        if c == '"' {
            quoted(&mut chars);
        }
    }
    let mut out = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'"').is_some() {
            out.push(quoted(&mut chars));
        } else {
            let mut name = String::new();
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$') {
                name.push(c);
            }
            if name.is_empty() {
                break;
            }
            if !name.eq_ignore_ascii_case("PUBLIC") {
                out.push(name);
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&',').is_none() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::model::RelKind;

    #[test]
    fn roles_listed_in_policies_and_user_mappings() {
        let roles = |sql: &str| roles_listed(sql);
        assert_eq!(
            roles(
                "CREATE POLICY \"to TO x\" ON \"s\".\"TO\" AS PERMISSIVE FOR ALL TO reader, \
                 \"Writer, \"\"TO\"\"\", app$1 USING ((owner = CURRENT_USER));"
            ),
            vec!["reader", "Writer, \"TO\"", "app$1"]
        );
        assert!(roles(
            "CREATE POLICY \"p\" ON \"s\".\"t\" AS RESTRICTIVE FOR SELECT TO PUBLIC USING (true);"
        )
        .is_empty());
        assert_eq!(
            roles("CREATE POLICY \"p\" ON \"t\" AS PERMISSIVE FOR ALL TO PUBLIC, \"public\";"),
            vec!["public"]
        );
        assert_eq!(
            roles("CREATE USER MAPPING FOR \"m, FOR\" SERVER \"to\" OPTIONS (user 'TO x');"),
            vec!["m, FOR"]
        );
        assert!(roles("CREATE USER MAPPING FOR PUBLIC SERVER \"s\";").is_empty());
    }

    #[test]
    fn quoting() {
        assert_eq!(qualify("my \"s\"", "T"), "\"my \"\"s\"\"\".\"T\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn dollar_quoting_avoids_the_text() {
        assert_eq!(dollar_quote("x"), "$pgsnap$x$pgsnap$");
        assert_eq!(dollar_quote("a$pgsnap$b"), "$pgsnap_$a$pgsnap$b$pgsnap_$");
    }

    #[test]
    fn acl_roundtrip_statements() {
        let e = vec![
            AclEntry(Some("own".into()), "own".into(), "SELECT".into(), false),
            AclEntry(Some("own".into()), "own".into(), "INSERT".into(), false),
            AclEntry(Some("bob".into()), "own".into(), "SELECT".into(), true),
            AclEntry(None, "bob".into(), "SELECT".into(), false),
        ];
        let s = acl_statements("TABLE \"s\".\"t\"", Some("own"), &Some(e));
        assert_eq!(
            s,
            vec![
                "REVOKE ALL ON TABLE \"s\".\"t\" FROM PUBLIC;",
                "REVOKE ALL ON TABLE \"s\".\"t\" FROM \"own\";",
                "GRANT SELECT, INSERT ON TABLE \"s\".\"t\" TO \"own\";",
                "GRANT SELECT ON TABLE \"s\".\"t\" TO \"bob\" WITH GRANT OPTION;",
                "SET ROLE \"bob\"; GRANT SELECT ON TABLE \"s\".\"t\" TO PUBLIC; RESET ROLE;",
            ]
        );
        assert!(acl_statements("TABLE x", Some("o"), &None).is_empty());
    }

    #[test]
    fn copy_statements_name_columns() {
        let t = TableInfo {
            object_id: 0,
            oid: 1,
            schema: "app".into(),
            name: "Order".into(),
            kind: RelKind::Ordinary,
            columns: vec!["a".into(), "b c".into()],
            column_types: vec![],
            blank_padded: vec![],
            unlogged: false,
            has_data: true,
            relpages: 0,
            reltuples: 0.0,
            bytes_estimate: 0,
            parent: None,
        };
        assert_eq!(
            copy_out_sql(&t),
            "COPY \"app\".\"Order\" (\"a\", \"b c\") TO STDOUT"
        );
        assert_eq!(
            copy_in_sql(&t),
            "COPY \"app\".\"Order\" (\"a\", \"b c\") FROM STDIN"
        );
        let empty = TableInfo {
            columns: vec![],
            ..t
        };
        assert_eq!(copy_out_sql(&empty), "COPY \"app\".\"Order\" TO STDOUT");
    }

    #[test]
    fn roles_named_finds_grantees_owners_grantors_only() {
        let on = "TABLE \"s\".\"x TO \"\"evil\"\"\"";
        let owner = Some("own");
        let entries = vec![
            AclEntry(
                Some("rds_superuser".into()),
                "own".into(),
                "SELECT".into(),
                false,
            ),
            AclEntry(Some("app".into()), "rdsadmin".into(), "UPDATE".into(), true),
            AclEntry(None, "own".into(), "SELECT".into(), false),
        ];
        let stmts = acl_statements(on, owner, &Some(entries));
        let named: Vec<Vec<String>> = stmts.iter().map(|s| roles_named(s)).collect();
        assert_eq!(
            named,
            vec![
                vec![],
                vec!["own".to_string()],
                vec!["rds_superuser".to_string()],
                vec!["rdsadmin".to_string(), "app".to_string()],
                vec![],
            ]
        );
        assert_eq!(roles_named(&owner_to(on, "o\"x")), vec!["o\"x".to_string()]);
        let d = default_acl_statements(
            "rdsadmin",
            Some("s"),
            "TABLES",
            &[AclEntry(
                Some("g".into()),
                "rdsadmin".into(),
                "SELECT".into(),
                false,
            )],
        );
        assert_eq!(
            roles_named(&d[0]),
            vec!["rdsadmin".to_string(), "g".to_string()]
        );
    }
}
