//! The harness itself: the throwaway cluster starts, answers, and enforces
//! the password role's authentication.
mod common;

#[test]
fn cluster_starts_and_answers() {
    let pg = common::pg();
    let db = pg.create_db("harness");
    assert_eq!(pg.psql(&db, "SELECT 1 + 1").trim(), "2");
    pg.drop_db(&db);
}

#[test]
fn password_role_needs_its_password() {
    let pg = common::pg();
    let out = std::process::Command::new(pg.bindir.join("psql"))
        .args(["-X", "-w", "-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", common::PW_USER, "-d", "postgres", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success(), "login without password must fail");
}
