//! Start/stop behaviour and the standalone binary.

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::common::*;
use gitlab_emulator::{Config, Emulator};

#[test]
fn drop_stops_the_server() {
    let gl = Emulator::start(Config::default());
    let addr = gl.addr();
    assert!(gl.url().starts_with("http://127.0.0.1:"));
    assert_eq!(gl.realm(), format!("{}/jwt/auth", gl.url()));
    assert!(std::net::TcpStream::connect(addr).is_ok());
    let cert = gl.cert_pem_path().to_path_buf();
    assert!(cert.is_file());
    drop(gl);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert!(!cert.exists(), "temp dir removed");
}

#[test]
fn can_start_and_drop_inside_an_async_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let gl = Emulator::start(Config::default());
        let url = gl.url();
        drop(gl);
        url
    });
    assert!(url.starts_with("http://"));
}

#[test]
fn update_config_applies_to_next_requests() {
    let gl = Emulator::start(Config::default());
    gl.add_user("u", "pw", false);
    let svc = "service=container_registry";
    assert_eq!(jwt(&gl.realm(), svc, Some(("u", "pw"))).status(), 200);
    gl.update_config(|c| c.registry_enabled = false);
    assert_eq!(jwt(&gl.realm(), svc, Some(("u", "pw"))).status(), 404);
    gl.update_config(|c| {
        c.registry_enabled = true;
        c.token_window = std::time::Duration::from_secs(900);
    });
    let claims = token_claims(jwt(&gl.realm(), svc, Some(("u", "pw"))));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_prints_one_json_line_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_gitlab-emulator"))
        .args(["--token-window-secs", "42", "--project", "group/project"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in ["url", "realm", "cert", "pat"] {
        assert!(info[key].is_string(), "{key} in {line}");
    }
    let pat = info["pat"].as_str().unwrap();
    assert!(pat.starts_with("glpat-"));
    assert!(std::path::Path::new(info["cert"].as_str().unwrap()).is_file());
    let claims = token_claims(jwt(
        info["realm"].as_str().unwrap(),
        "service=container_registry&scope=repository:group/project:push,pull",
        Some(("alice", pat)),
    ));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        42
    );
    assert_eq!(access(&claims)[0].1, vec!["push", "pull"]);
}
