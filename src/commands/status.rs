//! `status [--json]`: one row per registry the helper serves: the stored ones (from the
//! state file, no secret loaded) and those the environment serves (a GitLab CI job, or
//! `DOCKER_CREDENTIAL_GITLAB_TOKEN`; named by variable, never by value). The text form also
//! says which secret store a new secret would go to and why, what a `keyutils` store
//! cannot keep, and which entries live in a store other than that one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::env::Env;
use crate::policy;
use crate::records::{Entry, Records, Revoked, State};
use crate::registry::RegistryHost;
use crate::settings::Settings;
use crate::sources::{Cascade, EnvCredential, Source};
use crate::store::{self, StoreChoice};

#[derive(Debug, Serialize)]
struct Row<'a> {
    registry: &'a str,
    /// `stored`, `GitLab CI job` or `environment (…)`.
    source: &'a str,
    /// For environment credentials: the variable that holds the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_variable: Option<&'a str>,
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
    /// The second token of a standby pair (`login --standby`).
    standby: bool,
    /// For a pair: whether `get` hands this token out now.
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
    /// When `get` will renew it (the start of its early-renewal window).
    renews_at: Option<String>,
    /// How it renews: `rotation` (access tokens) or `refresh token` (OAuth).
    renews_with: Option<&'static str>,
    /// The token is known to be rotated or revoked elsewhere: `get` refuses it until a new
    /// `login`. When and how this machine learnt it.
    revoked_elsewhere: Option<RevokedRow>,
    /// In a fleet (`vault` store): the hosts with live hand-outs of it, and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    live_handouts: Option<Vec<HostLease>>,
}

#[derive(Debug, Serialize)]
struct HostLease {
    host: String,
    until: String,
}

#[derive(Debug, Serialize)]
struct RevokedRow {
    at: String,
    reason: String,
}

fn row<'a>(
    key: &'a str,
    e: &'a Entry,
    state: &'a State,
    settings: &Settings,
    records: &Records,
    now: jiff::Timestamp,
) -> Row<'a> {
    let g = e.gitlab.as_ref();
    let base = RegistryHost::standby_of(key);
    let registry = base.unwrap_or(key);
    let host = RegistryHost::from_key(key);
    let paired = RegistryHost::from_key(registry)
        .is_ok_and(|r| state.entries.contains_key(r.standby().as_str()));
    let active = paired.then(|| {
        state
            .entries
            .get(registry)
            .is_some_and(Entry::standby_active)
            == base.is_some()
    });
    // When a `get` with no live lease renews it: the policy's own answer.
    let renews_at = g.and_then(|g| {
        let min_validity = settings.min_validity(registry);
        let facts = policy::Facts::of(g, min_validity, settings.early_renewal(), None, now);
        policy::renews_at(&facts).map(|t| t.to_string())
    });
    Row {
        registry,
        source: Source::Stored.describe(),
        secret_variable: None,
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
        renewal_interrupted: host.is_ok_and(|h| {
            let group = Records::held_in(state, &h).map_or(h, |held| held.group());
            records.journal_open(&group)
        }),
        standby: base.is_some(),
        active,
        renews_at,
        renews_with: g.filter(|g| g.can_renew()).map(|g| match g.kind {
            crate::model::TokenKind::OauthToken => "refresh token",
            _ => "rotation",
        }),
        live_handouts: None,
        revoked_elsewhere: e.revoked().map(|m| RevokedRow {
            at: m.at.to_string(),
            reason: m.reason,
        }),
    }
}

fn env_row(c: &EnvCredential) -> Row<'_> {
    Row {
        registry: c.host.as_str(),
        source: c.source.describe(),
        secret_variable: Some(c.secret_var),
        gitlab_url: None,
        username: &c.username,
        kind: Some(c.kind()),
        scopes: None,
        expires_at: None,
        expires_in_days: None,
        can_renew: Some(false),
        store: "environment",
        stored_at: String::new(),
        renewal_interrupted: false,
        standby: false,
        active: None,
        renews_at: None,
        renews_with: None,
        revoked_elsewhere: None,
        live_handouts: None,
    }
}

pub(crate) fn run(env: &Env, json: bool) -> anyhow::Result<()> {
    let records = Records::locate(env)?;
    let inventory = Cascade {
        records: Some(&records),
        env,
    }
    .inventory()?;
    let now = crate::clock::now();
    let settings = Settings::load(env)?;
    let state = &inventory.stored;
    let mut rows: Vec<Row> = state
        .entries
        .iter()
        .map(|(key, e)| row(key, e, state, &settings, &records, now))
        .collect();
    if let Some(fleet) = records.fleet() {
        for r in &mut rows {
            let keys = [r.registry.to_owned()];
            r.live_handouts = fleet.leases(&keys, now).ok().map(|l| {
                l.hosts
                    .into_iter()
                    .map(|(host, until)| HostLease {
                        host,
                        until: until.to_string(),
                    })
                    .collect()
            });
        }
    }
    rows.extend(inventory.from_env.iter().map(env_row));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut notes = match records.fleet() {
        Some(fleet) => fleet_notes(fleet, &state.entries, now),
        None => {
            let current = store::current(&records.dir().lock()?, StoreChoice::from_env(env)?);
            store_notes(&current, &records, &state.entries)
        }
    };
    notes.extend(renewal_notes(&records, &state.entries, &settings));
    if rows.is_empty() {
        println!("No credentials stored. Log in with: docker-credential-gitlab login REGISTRY");
    } else {
        print_table(&rows);
        println!();
    }
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

/// Where a fleet's records are, and which hosts hand out each registry now.
fn fleet_notes(
    fleet: &crate::records::fleet::Fleet,
    entries: &std::collections::BTreeMap<String, Entry>,
    now: jiff::Timestamp,
) -> Vec<String> {
    let mut notes = vec![super::fleet_view::vault_line(fleet).unwrap_or_else(|e| e)];
    notes.extend(super::fleet_view::lease_lines(
        fleet,
        entries.keys().cloned(),
        now,
    ));
    notes
}

/// The rows as a table, one column per field that fits a terminal.
fn print_table(rows: &[Row<'_>]) {
    let table: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let header = [
        "REGISTRY",
        "GITLAB",
        "USERNAME",
        "KIND",
        "SCOPES",
        "EXPIRES",
        "CAN RENEW",
        "STORE",
        "SOURCE",
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
    if rows.iter().any(|r| r.active.is_some()) {
        println!("(* the token of a standby pair that get hands out now)");
    }
}

/// One row's cells, as the table shows them.
fn cells(r: &Row<'_>) -> [String; 9] {
    let dash = || "-".to_owned();
    let day = |at: &str| at.get(..10).unwrap_or(at).to_owned();
    let minute = |at: &str| at.get(..16).unwrap_or(at).replace('T', " ");
    [
        format!(
            "{}{}{}",
            r.registry,
            if r.standby { " (standby)" } else { "" },
            if r.active == Some(true) { " *" } else { "" }
        ),
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
            (Some(at), Some(d)) if d < 0 => format!("{} (expired)", day(at)),
            (Some(at), Some(d)) => format!("{} (in {d} days)", day(at)),
            _ => "never/unknown".into(),
        },
        match r.can_renew {
            _ if r.revoked_elsewhere.is_some() => "revoked elsewhere: log in again".into(),
            _ if r.renewal_interrupted => "interrupted: run get or doctor".into(),
            // An access token lives hours: the minute it refreshes, not the day.
            Some(true) if r.renews_with == Some("refresh token") => match &r.renews_at {
                Some(at) => format!("yes: refresh token, from {}", minute(at)),
                None => "yes: refresh token".into(),
            },
            Some(true) => match &r.renews_at {
                Some(at) => format!("yes, from {}", day(at)),
                None => "yes".into(),
            },
            Some(false) => "no".into(),
            None => dash(),
        },
        match r.secret_variable {
            Some(var) => format!("env {var}"),
            None => r.store.to_owned(),
        },
        r.source.to_owned(),
    ]
}

/// The store a new secret goes to and why; what keyutils cannot keep; entries that live
/// in another store (still served from there, never silently lost).
fn store_notes(
    current: &store::Current,
    records: &Records,
    entries: &BTreeMap<String, Entry>,
) -> Vec<String> {
    let mut notes = vec![match &current.backend {
        Ok(b) => format!("Secret store: {b} ({})", current.why),
        Err(e) => format!("Secret store: none usable ({}): {e}", current.why),
    }];
    notes.extend(orphans(records, entries));
    notes.extend(store::keyutils_note(
        current,
        entries.values().map(|e| e.store),
    ));
    if let Ok(now) = &current.backend {
        let elsewhere: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.store != *now)
            .map(|(host, e)| format!("{host} ({})", e.store))
            .collect();
        if !elsewhere.is_empty() {
            notes.push(format!(
                "In another store than {now}: {}; they are still read from there. To move one, \
                 log in to it again (its secret then goes to {now}).",
                elsewhere.join(", ")
            ));
        }
    }
    notes
}

/// Renewals that cut live hand-outs (busy hosts without a standby pair), and promises no
/// token can keep.
fn renewal_notes(
    records: &Records,
    entries: &BTreeMap<String, Entry>,
    settings: &Settings,
) -> Vec<String> {
    let mut notes: Vec<String> = entries
        .iter()
        .filter_map(|(key, e)| Some((RegistryHost::from_key(key).ok()?, e.revoked()?)))
        .map(|(host, mark)| revoked_note(&host, &mark))
        .collect();
    for (key, e) in entries {
        let Some(info) = e.gitlab.as_ref().filter(|g| g.can_renew()) else {
            continue;
        };
        let registry = RegistryHost::standby_of(key).unwrap_or(key);
        let Ok(host) = RegistryHost::from_key(key) else {
            continue;
        };
        let paired = RegistryHost::from_key(registry)
            .is_ok_and(|r| entries.contains_key(r.standby().as_str()));
        if let Some((at, count)) = records.last_cut(&host)
            && !paired
        {
            notes.push(format!(
                "{registry}: the renewal at {at} revoked the token under {count} hand-out(s) still inside their promise \
                 (docker runs more often than min_validity here); add a second token so renewals never cut a push: \
                 docker-credential-gitlab login {registry} --standby"
            ));
        }
        if let Some(unkeepable) = policy::unkeepable(info, settings.min_validity(registry))
            && RegistryHost::standby_of(key).is_none()
        {
            notes.push(format!(
                "{registry}: {unkeepable}: it cannot be kept; lower it"
            ));
        }
    }
    notes
}

/// Why `get` refuses a token known dead, and the fix.
fn revoked_note(host: &RegistryHost, mark: &Revoked) -> String {
    format!(
        "{host}: the token was rotated or revoked elsewhere ({}; learnt at {}); get refuses it. \
         Log in again with the current token, or create a new one: docker-credential-gitlab login {host}",
        mark.reason,
        mark.learnt_at()
    )
}

/// Secrets the file store holds that no state entry points at (a state file set aside
/// after corruption, a crash between secret and metadata): found again, never lost.
fn orphans(records: &Records, entries: &BTreeMap<String, Entry>) -> Option<String> {
    let hosts = store::file::FileStore::in_dir(records.dir()).hosts().ok()?;
    let orphans: Vec<String> = hosts
        .into_iter()
        .filter(|h| !entries.contains_key(h))
        .collect();
    (!orphans.is_empty()).then(|| {
        format!(
            "The file store also holds secrets with no entry in the state file: {}; `get` does not serve them. \
             Log in to them again, or erase them (printf HOST | docker-credential-gitlab erase).",
            orphans.join(", ")
        )
    })
}
