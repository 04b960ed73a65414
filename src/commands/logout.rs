//! `logout REGISTRY [--revoke]`: forget a credential, and optionally revoke it at GitLab.

use anyhow::{Context, bail};
use reqwest::Url;

use crate::env::Env;
use crate::gitlab::{self, http::Http};
use crate::model::TokenKind;
use crate::model::stored_secret::{access_token, refresh_token};
use crate::records::Records;
use crate::registry::RegistryHost;
use crate::store::StoreChoice;

pub(crate) fn run(env: &Env, registry: &str, revoke: bool) -> anyhow::Result<()> {
    let host = RegistryHost::parse(registry)?;
    let records = Records::locate(env)?;
    if revoke {
        let Some((entry, secret)) = records.load(&host)? else {
            bail!("no credentials stored for {host}: nothing to revoke");
        };
        // A standby token goes too (logout forgets it with the registry).
        if let Some((second, standby_secret)) = records.load(&host.standby())?
            && let Some(info) = second
                .gitlab
                .filter(|i| i.kind == TokenKind::PersonalAccessToken)
            && let Ok(url) = Url::parse(&info.url)
        {
            match gitlab::revoke_self(&Http::new()?, &url, &standby_secret) {
                Ok(true) => println!("Revoked the standby token at {}.", info.url),
                Ok(false) => println!("GitLab no longer accepts the standby token."),
                Err(e) => eprintln!("warning: could not revoke the standby token: {e}"),
            }
        }
        let info = entry.gitlab.with_context(|| {
            format!(
                "the credential for {host} was stored by `docker login`, so its GitLab instance is unknown; \
                 revoke it in GitLab's settings, then run `logout {host}` without --revoke"
            )
        })?;
        if info.kind == TokenKind::OauthToken {
            let client_id = info.oauth_client_id.clone().with_context(|| {
                format!("no OAuth client id is recorded for {host}; revoke the application's access in GitLab instead")
            })?;
            let url = Url::parse(&info.url).context("the recorded GitLab URL is invalid")?;
            let http = Http::new()?;
            // The access token and, with it, its refresh token.
            gitlab::oauth::revoke(&http, &url, &client_id, &access_token(&secret))?;
            if let Some(refresh) = refresh_token(&secret) {
                gitlab::oauth::revoke(&http, &url, &client_id, &refresh)?;
            }
            println!("Revoked the OAuth token at {}.", info.url);
        } else if info.kind != TokenKind::PersonalAccessToken {
            bail!(
                "only personal, project and group access tokens can revoke themselves; this is a {}: \
                 revoke it in GitLab, then run `logout {host}` without --revoke",
                info.kind.describe()
            );
        }
        if info.kind == TokenKind::PersonalAccessToken {
            // The token only ever goes to the instance recorded for it at login.
            let gitlab_url = Url::parse(&info.url).context("the recorded GitLab URL is invalid")?;
            let http = Http::new()?;
            if gitlab::revoke_self(&http, &gitlab_url, &secret)? {
                println!("Revoked the token at {}.", info.url);
            } else {
                println!("GitLab no longer accepts the token (already revoked or expired).");
            }
        }
    }
    if records.forget(StoreChoice::from_env(env).ok(), &host)? {
        println!("Removed the credentials for {host}.");
    } else {
        println!("No credentials were stored for {host}.");
    }
    Ok(())
}
