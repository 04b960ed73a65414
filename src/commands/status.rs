//! `status [--json]`: one row per stored registry. Reads only the state file: no secret is
//! loaded, so none can be printed.

use std::path::Path;

use serde::Serialize;

use crate::registry::RegistryHost;

use crate::state::{Entry, StateFile};

#[derive(Debug, Serialize)]
struct Row<'a> {
    registry: &'a str,
    gitlab_url: Option<&'a str>,
    username: &'a str,
    kind: Option<&'a str>,
    scopes: Option<&'a [String]>,
    expires_at: Option<String>,
    expires_in_days: Option<i64>,
    can_renew: Option<bool>,
    store: &'a str,
    stored_at: String,
    /// A renewal was cut short; `get` sorts it out, or says to log in again.
    renewal_interrupted: bool,
}

fn row<'a>(registry: &'a str, e: &'a Entry, now: jiff::Timestamp, dir: &Path) -> Row<'a> {
    let g = e.gitlab.as_ref();
    Row {
        registry,
        gitlab_url: g.map(|g| g.url.as_str()),
        username: &e.username,
        kind: g.map(|g| g.kind.describe()),
        scopes: g.map(|g| g.scopes.as_slice()),
        expires_at: g.and_then(|g| g.expires_at).map(|t| t.to_string()),
        expires_in_days: g
            .and_then(|g| g.expires_at)
            .map(|t| t.duration_since(now).as_hours().div_euclid(24)),
        can_renew: g.map(|g| g.can_renew()),
        store: e.store.name(),
        stored_at: e.stored_at.to_string(),
        renewal_interrupted: RegistryHost::parse(registry)
            .is_ok_and(|h| crate::renew::interrupted(dir, &h)),
    }
}

pub fn run(json: bool) -> anyhow::Result<()> {
    let state_file = StateFile::open_default()?;
    let state = state_file.load()?;
    let now = jiff::Timestamp::now();
    let rows: Vec<Row> = state
        .entries
        .iter()
        .map(|(registry, e)| row(registry, e, now, state_file.dir()))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No credentials stored. Log in with: docker-credential-gitlab login REGISTRY");
        return Ok(());
    }
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let dash = || "-".to_owned();
            [
                r.registry.to_owned(),
                r.gitlab_url.map(str::to_owned).unwrap_or_else(dash),
                r.username.to_owned(),
                r.kind
                    .map(str::to_owned)
                    .unwrap_or_else(|| "unknown (docker login)".into()),
                r.scopes
                    .map(|s| s.join(","))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(dash),
                match (&r.expires_at, r.expires_in_days) {
                    (Some(at), Some(d)) if d < 0 => format!("{} (expired)", &at[..10]),
                    (Some(at), Some(d)) => format!("{} (in {d} days)", &at[..10]),
                    _ => "never/unknown".into(),
                },
                match r.can_renew {
                    _ if r.renewal_interrupted => "interrupted: run get or doctor".into(),
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => dash(),
                },
                r.store.to_owned(),
            ]
        })
        .collect();
    let header = [
        "REGISTRY",
        "GITLAB",
        "USERNAME",
        "KIND",
        "SCOPES",
        "EXPIRES",
        "CAN RENEW",
        "STORE",
    ];
    let mut widths = header.map(str::len);
    for r in &table {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let print = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print(header.to_vec());
    for r in &table {
        print(r.iter().map(String::as_str).collect());
    }
    Ok(())
}
