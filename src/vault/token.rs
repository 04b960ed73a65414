//! The Vault token's own lifetime, kept off the steady path.
//!
//! A token from `VAULT_TOKEN`, `BAO_TOKEN` or `~/.vault-token` is looked up (`lookup-self`)
//! only when this host has no fresh note of it: the note (in the data directory, 0600, named
//! after a short SHA-256 of the address and token, holding only times) says when it expires,
//! when it was checked, and when it is due for `renew-self`. So a steady `get` sends only its
//! own read. An AppRole login is done once per process; the token it yields lives in memory
//! only.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::APPROLE_MOUNT;
use super::error::vault_errors;
use super::{AuthSource, Vault, VaultError};
use crate::secret::{ExposeSecret, Secret};

pub(super) const RENEW_FIX: &str = "renew it or log in again (vault login)";
const APPROLE_FIX: &str =
    "it was revoked or outlived the role's token_ttl; check the AppRole (auth/approle/role/…)";
/// A note older than this is checked again with `lookup-self`.
pub(super) const NOTE_FRESH: SignedDuration = SignedDuration::from_mins(5);
/// A renewable token is renewed when less than a third of its TTL, or less than this, is left.
pub(super) const RENEW_MARGIN: SignedDuration = SignedDuration::from_mins(10);

/// The token this process uses, and when it expires (`None`: never).
pub(super) struct Session {
    pub token: Secret,
    pub expire_time: Option<Timestamp>,
}

/// What this host last learned of a token: no secret, only times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Note {
    pub expire_time: Option<Timestamp>,
    pub checked_at: Timestamp,
    /// When `renew-self` is due (`None`: not renewable, or renewing does not help).
    pub renew_at: Option<Timestamp>,
}

impl Note {
    /// Trusted without asking Vault: checked within [`NOTE_FRESH`], not due for renewal,
    /// not expired.
    pub fn fresh(&self, now: Timestamp) -> bool {
        let age = now.duration_since(self.checked_at);
        age >= SignedDuration::ZERO
            && age < NOTE_FRESH
            && self.renew_at.is_none_or(|r| now < r)
            && self.expire_time.is_none_or(|e| now < e)
    }
}

/// A token's lifetime as Vault tells it, in seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetime {
    pub ttl: i64,
    pub creation_ttl: i64,
    pub renewable: bool,
}

impl Lifetime {
    fn expire(&self, now: Timestamp) -> Option<Timestamp> {
        (self.ttl > 0).then(|| now.checked_add(SignedDuration::from_secs(self.ttl)).ok())?
    }

    fn margin(&self) -> SignedDuration {
        SignedDuration::from_secs(self.creation_ttl / 3).max(RENEW_MARGIN)
    }

    /// Renewable, and less than a third of its TTL (or less than [`RENEW_MARGIN`]) left.
    pub fn due(&self) -> bool {
        self.renewable && self.ttl > 0 && SignedDuration::from_secs(self.ttl) < self.margin()
    }

    fn renew_at(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.renewable {
            return None;
        }
        self.expire(now)?.checked_sub(self.margin()).ok()
    }

    /// When to renew again, this lifetime being what `renew-self` just gave. A token whose
    /// whole TTL is inside its margin (under 10 min) is still due: renewed again once a
    /// third of it is gone, else it would die between two gets. `None` when the renewal
    /// gave less than the token's TTL (capped by its max TTL: renewing again would not help).
    fn renew_again_at(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.due() {
            return self.renew_at(now);
        }
        if self.ttl < self.creation_ttl {
            return None;
        }
        now.checked_add(SignedDuration::from_secs(self.ttl / 3))
            .ok()
    }
}

pub(super) fn establish(vault: &Vault) -> Result<Session, VaultError> {
    match &vault.config.auth {
        AuthSource::Token { token, .. } => token_session(vault, token),
        AuthSource::AppRole { role_id, secret_id } => approle_login(vault, role_id, secret_id),
    }
}

fn token_session(vault: &Vault, token: &Secret) -> Result<Session, VaultError> {
    let path = note_path(vault, token);
    let now = crate::clock::now();
    if let Some(note) = read_note(&path).filter(|n| n.fresh(now)) {
        return Ok(Session {
            token: token.clone(),
            expire_time: note.expire_time,
        });
    }
    let life = lookup_self(vault, token)?;
    let (mut expire_time, mut renew_at) = (life.expire(now), life.renew_at(now));
    if life.due() {
        match renew_self(vault, token) {
            Ok(ttl) => {
                let renewed = Lifetime { ttl, ..life };
                expire_time = renewed.expire(now);
                renew_at = renewed.renew_again_at(now);
            }
            Err(e) if e.is_unavailable() => return Err(e),
            // Still valid for now; the next lookup (in NOTE_FRESH) tries again.
            Err(_) => renew_at = None,
        }
    }
    let note = Note {
        expire_time,
        checked_at: now,
        renew_at,
    };
    write_note(&vault.note_dir, &path, &note);
    Ok(Session {
        token: token.clone(),
        expire_time,
    })
}

/// `auth/token/lookup-self`; a 403 means the token is dead (its note is removed).
pub(super) fn lookup_self(vault: &Vault, token: &Secret) -> Result<Lifetime, VaultError> {
    let path = "auth/token/lookup-self";
    let answer = vault.raw(reqwest::Method::GET, path, false, None, Some(token))?;
    match answer.status {
        StatusCode::OK => {
            let v: Value = vault.parse("lookup-self", path, &answer)?;
            let d = &v["data"];
            Ok(Lifetime {
                ttl: d["ttl"].as_i64().unwrap_or(0),
                creation_ttl: d["creation_ttl"].as_i64().unwrap_or(0),
                renewable: d["renewable"].as_bool().unwrap_or(false),
            })
        }
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            let (from, fix) = match &vault.config.auth {
                AuthSource::Token { from, .. } => {
                    let _ = std::fs::remove_file(note_path(vault, token));
                    (*from, RENEW_FIX)
                }
                AuthSource::AppRole { .. } => ("the AppRole login", APPROLE_FIX),
            };
            Err(VaultError::TokenInvalid {
                addr: vault.config.shown_addr(),
                from,
                fix,
            })
        }
        _ => Err(vault.unexpected("lookup-self", path, &answer)),
    }
}

/// `auth/token/renew-self`: the new TTL in seconds.
fn renew_self(vault: &Vault, token: &Secret) -> Result<i64, VaultError> {
    let path = "auth/token/renew-self";
    let body = json!({});
    let answer = vault.raw(reqwest::Method::POST, path, false, Some(&body), Some(token))?;
    if answer.status != StatusCode::OK {
        return Err(vault.unexpected("renew-self", path, &answer));
    }
    let v: Value = vault.parse("renew-self", path, &answer)?;
    v["auth"]["lease_duration"]
        .as_i64()
        .ok_or_else(|| vault.bad_answer("renew-self", path, "no auth.lease_duration"))
}

/// `auth/approle/login`, once per process; the token is never written anywhere.
fn approle_login(vault: &Vault, role_id: &str, secret_id: &Secret) -> Result<Session, VaultError> {
    let path = format!("auth/{APPROLE_MOUNT}/login");
    let body = json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
    let answer = vault.raw(reqwest::Method::POST, &path, false, Some(&body), None)?;
    match answer.status {
        StatusCode::OK => {
            let v: Value = vault.parse("AppRole login", &path, &answer)?;
            let token = v["auth"]["client_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| vault.bad_answer("AppRole login", &path, "no auth.client_token"))?;
            let ttl = v["auth"]["lease_duration"].as_i64().unwrap_or(0);
            let life = Lifetime {
                ttl,
                creation_ttl: ttl,
                renewable: false,
            };
            Ok(Session {
                token: Secret::from(token.to_owned()),
                expire_time: life.expire(crate::clock::now()),
            })
        }
        StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            Err(VaultError::AppRoleRefused {
                addr: vault.config.shown_addr(),
                errors: vault_errors(&answer.body, &[secret_id.expose_secret()]),
            })
        }
        _ => Err(vault.unexpected("AppRole login", &path, &answer)),
    }
}

/// `vault-token-<16 hex digits>.json`: a SHA-256 of the address and the token, so a new
/// token (or another Vault) never inherits an old note, and the note says nothing of it.
pub(super) fn note_path(vault: &Vault, token: &Secret) -> PathBuf {
    let input = format!("{}\n{}", vault.config.shown_addr(), token.expose_secret());
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vault.note_dir.join(format!("vault-token-{hex}.json"))
}

fn read_note(path: &Path) -> Option<Note> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Best effort: without a note the next process asks Vault again, nothing worse.
fn write_note(dir: &Path, path: &Path, note: &Note) {
    let Ok(text) = serde_json::to_string(note) else {
        return;
    };
    if crate::private_file::create_dir(dir).is_ok() {
        let _ = crate::private_file::replace(path, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_note_is_fresh_for_five_minutes_until_renewal_or_expiry() {
        let note = Note {
            expire_time: Some(ts("2030-01-01T12:00:00Z")),
            checked_at: ts("2030-01-01T10:00:00Z"),
            renew_at: Some(ts("2030-01-01T11:00:00Z")),
        };
        assert!(note.fresh(ts("2030-01-01T10:04:59Z")));
        assert!(!note.fresh(ts("2030-01-01T10:05:00Z")));
        // A clock that went back: not trusted.
        assert!(!note.fresh(ts("2030-01-01T09:59:00Z")));
        let due = Note {
            renew_at: Some(ts("2030-01-01T10:01:00Z")),
            ..note.clone()
        };
        assert!(!due.fresh(ts("2030-01-01T10:02:00Z")));
        let dead = Note {
            expire_time: Some(ts("2030-01-01T10:01:00Z")),
            renew_at: None,
            ..note.clone()
        };
        assert!(!dead.fresh(ts("2030-01-01T10:02:00Z")));
        let root = Note {
            expire_time: None,
            renew_at: None,
            ..note
        };
        assert!(root.fresh(ts("2030-01-01T10:04:00Z")));
    }

    #[test]
    fn renewal_is_due_with_a_third_or_ten_minutes_left() {
        let life = |ttl, creation_ttl, renewable| Lifetime {
            ttl,
            creation_ttl,
            renewable,
        };
        assert!(!life(3 * 3600, 6 * 3600, true).due());
        assert!(life(2 * 3600 - 1, 6 * 3600, true).due());
        assert!(!life(2 * 3600 - 1, 6 * 3600, false).due());
        assert!(life(599, 900, true).due());
        assert!(!life(0, 0, true).due(), "a token that never expires");
        let now = ts("2030-01-01T00:00:00Z");
        assert_eq!(
            life(6 * 3600, 6 * 3600, true).renew_at(now),
            Some(ts("2030-01-01T04:00:00Z"))
        );
        assert_eq!(life(6 * 3600, 6 * 3600, false).renew_at(now), None);
        // Renewed: a 6 h token again when a third is left, a 30 s one (all of it inside
        // the margin) once a third of it is gone, one capped by its max TTL (5 s of 30 s
        // given) never again.
        assert_eq!(
            life(6 * 3600, 6 * 3600, true).renew_again_at(now),
            Some(ts("2030-01-01T04:00:00Z"))
        );
        assert_eq!(
            life(30, 30, true).renew_again_at(now),
            Some(ts("2030-01-01T00:00:10Z"))
        );
        assert_eq!(life(5, 30, true).renew_again_at(now), None);
        assert_eq!(life(0, 0, true).expire(now), None);
    }
}
