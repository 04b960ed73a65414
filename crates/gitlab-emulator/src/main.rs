//! `gitlab-emulator` — run the test GitLab emulator standalone (manual runs, benchmarks).
//!
//! Prints one JSON line `{"url":…,"realm":…,"cert":…,"issuer":…,"kid":…,"user":…,"pat":…}`
//! on stdout, then serves until killed.

use std::net::SocketAddr;
use std::time::Duration;

use gitlab_emulator::{Config, Emulator, TokenSpec};

const USAGE: &str = "usage: gitlab-emulator [--listen ADDR] [--token-window-secs N] [--issuer ISS]
                       [--user NAME] [--password PW] [--pat-scopes a,b,c] [--project PATH]...

Starts the test-only GitLab emulator, seeds one user with a personal access token
(default scopes read_registry,write_registry,self_rotate), prints a JSON line with
url, realm, cert, issuer, kid, user and pat, and serves until killed.";

fn main() {
    if let Err(e) = run() {
        eprintln!("gitlab-emulator: {e}\n\n{USAGE}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let mut config = Config::default();
    let mut user = "alice".to_string();
    let mut password = "alice-password".to_string();
    let mut scopes = "read_registry,write_registry,self_rotate".to_string();
    let mut projects = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("missing value for {flag}"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--token-window-secs" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|e| format!("--token-window-secs: {e}"))?;
                config.token_window = Duration::from_secs(secs);
            }
            "--issuer" => config.issuer = value,
            "--user" => user = value,
            "--password" => password = value,
            "--pat-scopes" => scopes = value,
            "--project" => projects.push(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let emu = Emulator::start_on(config, listen).map_err(|e| format!("start: {e}"))?;
    for p in &projects {
        emu.add_project(p);
    }
    let uid = emu.add_user(&user, &password, false);
    let scopes: Vec<&str> = scopes.split(',').filter(|s| !s.is_empty()).collect();
    let pat = emu.add_personal_access_token(uid, TokenSpec::new("emulator", &scopes));
    let line = serde_json::json!({
        "url": emu.url(),
        "realm": emu.realm(),
        "cert": emu.cert_pem_path(),
        "issuer": emu.issuer(),
        "kid": emu.kid(),
        "user": user,
        "pat": pat.token,
    });
    println!("{line}");
    loop {
        std::thread::park();
    }
}
