//! Helpers to run the real CNCF `docker-registry` (distribution 2.8) against the emulator.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Emulator;

pub(crate) fn config_yaml(emu: &Emulator, port: u16, data_dir: &Path, realm: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n\
         auth:\n  token:\n    realm: {realm}\n    service: container_registry\n    issuer: {issuer}\n    rootcertbundle: {cert}\n\
         health:\n  storagedriver:\n    enabled: false\n",
        data = data_dir.display(),
        realm = realm,
        issuer = emu.issuer(),
        cert = emu.cert_pem_path().display(),
    )
}

/// A running `docker-registry serve` process; killed (and reaped) on drop.
#[derive(Debug)]
pub struct RealRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RealRegistry {
    /// `127.0.0.1:PORT` — what docker and credential helpers call the "server URL".
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's combined stdout/stderr log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("docker-registry"))
        .find(|p| p.is_file())
}

/// Status code of `GET /v2/` or `None` if the registry does not answer yet.
fn probe(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn start(emu: &Emulator, realm: &str) -> Result<RealRegistry, String> {
    let bin = find_binary().ok_or("docker-registry not found on PATH")?;
    let dir = tempfile::Builder::new()
        .prefix("registry-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let config = dir.path().join("config.yml");
    std::fs::write(&config, config_yaml(emu, port, &data, realm)).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.path().join("registry.log")).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("spawn docker-registry: {e}"))?;
    let mut reg = RealRegistry { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if probe(port).is_some() {
            return Ok(reg);
        }
        if let Ok(Some(status)) = reg.child.try_wait() {
            return Err(format!(
                "docker-registry exited with {status}: {}",
                reg.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("docker-registry did not start: {}", reg.log()))
}
