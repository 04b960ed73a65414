//! TEMPORARY interface stub (replaced by the real client on the vault-client branch).
#![allow(dead_code, unused_variables)]

use std::path::PathBuf;
use std::time::Instant;

use reqwest::Url;

use crate::env::Env;
use crate::secret::Secret;

#[derive(Debug)]
pub(crate) enum AuthSource {
    Token { from: &'static str, token: Secret },
    AppRole { role_id: String, secret_id: Secret },
}

#[derive(Debug)]
pub(crate) struct Config {
    pub addr: Url,
    pub mount: String,
    pub prefix: String,
    pub namespace: Option<String>,
    pub cacert: Option<PathBuf>,
    pub auth: AuthSource,
    pub host_id: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, VaultError> {
        todo!()
    }
    pub fn auth_method(&self) -> &'static str {
        todo!()
    }
    pub fn path(&self) -> String {
        todo!()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Versioned {
    pub version: u64,
    pub data: serde_json::Value,
}

#[derive(Debug)]
pub(crate) struct Conflict;

#[derive(Debug)]
pub(crate) struct Vault {}

#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    #[error("{0}")]
    Other(String),
}

impl Vault {
    pub fn new(config: Config, note_dir: PathBuf, deadline: Instant) -> Vault {
        todo!()
    }
    pub fn config(&self) -> &Config {
        todo!()
    }
    pub fn read(&self, rel: &str) -> Result<Option<Versioned>, VaultError> {
        todo!()
    }
    pub fn write(
        &self,
        rel: &str,
        data: &serde_json::Value,
        cas: Option<u64>,
    ) -> Result<Result<u64, Conflict>, VaultError> {
        todo!()
    }
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, VaultError> {
        todo!()
    }
    pub fn destroy(&self, rel: &str) -> Result<(), VaultError> {
        todo!()
    }
    pub fn token_expiry(&self) -> Result<Option<jiff::Timestamp>, VaultError> {
        todo!()
    }
    pub fn seal_status(&self) -> Result<bool, VaultError> {
        todo!()
    }
    pub fn missing_capabilities(&self) -> Result<Vec<String>, VaultError> {
        todo!()
    }
}
