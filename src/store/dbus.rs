//! A blocking D-Bus client connection, the smallest that serves the Secret Service store.
//!
//! One Unix socket, read and written on the calling thread with socket timeouts: no
//! executor, no reactor thread, no blocking pool. zbus builds and parses the messages
//! (`zbus::Message` and zvariant, which are plain data code); this file only moves bytes.
//!
//! The handshake is pipelined: the first write carries `AUTH EXTERNAL` (the bus reads our
//! uid from the socket), `BEGIN`, the bus `Hello` and the first batch of calls, so a fresh
//! connection costs no round trip of its own. Calls in a batch are sent in one write and
//! their replies matched by serial; signals (the bus's `NameAcquired`) are skipped.

use std::io::{self, Read, Write};
use std::num::NonZeroU32;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Instant;

use zbus::Message;
use zbus::address::transport::{Transport, UnixSocket};
use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{DynamicDeserialize, Endian, Signature, Value};

/// `AUTH EXTERNAL` with an empty identity (the socket's credentials), then `BEGIN`.
const AUTH: &[u8] = b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n";
/// Longest message accepted (the D-Bus limit is 128 MiB; ours are tiny).
const MAX_MESSAGE: usize = 1 << 20;

/// Why a batch of calls got no answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The deadline passed first.
    TimedOut,
    /// The socket failed or closed, or spoke something that is not D-Bus.
    Lost(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Lost(e.to_string()),
        }
    }
}

/// The answer to one call: a return or an error, with its body.
pub(super) struct Reply {
    /// `Some(name)` for an error reply.
    pub error: Option<String>,
    endian: Endian,
    signature: Signature,
    body: Vec<u8>,
}

impl Reply {
    /// The body as `T`, checked against the reply's signature.
    pub fn body<T: for<'d> DynamicDeserialize<'d>>(&self) -> zbus::zvariant::Result<T> {
        Data::new(&self.body[..], Context::new_dbus(self.endian, 0))
            .deserialize_for_dynamic_signature(&self.signature)
            .map(|(t, _)| t)
    }

    /// The message of an error reply (its first string argument), or "".
    pub fn error_text(&self) -> String {
        self.body::<(String,)>()
            .map(|(s,)| s)
            .or_else(|_| self.body::<String>())
            .unwrap_or_default()
    }
}

/// One connection to a bus, authenticated lazily by the first batch.
pub(super) struct Connection {
    socket: UnixStream,
    started: bool,
    authenticated: bool,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to the bus at `address` (Unix socket transports only).
    pub fn open(address: &zbus::Address) -> io::Result<Connection> {
        let Transport::Unix(unix) = address.transport() else {
            return Err(io::Error::other(format!(
                "unsupported bus address {address} (only unix: is)"
            )));
        };
        let addr = match unix.path() {
            UnixSocket::File(path) => SocketAddr::from_pathname(path)?,
            #[cfg(target_os = "linux")]
            UnixSocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_encoded_bytes())?
            }
            _ => return Err(io::Error::other(format!("cannot connect to {address}"))),
        };
        Ok(Connection {
            socket: UnixStream::connect_addr(&addr)?,
            started: false,
            authenticated: false,
            buf: Vec::new(),
        })
    }

    /// Sends `calls` in one write and returns their replies in the same order, all before
    /// `deadline`. On a fresh connection the handshake and `Hello` go first, in the same write.
    pub fn call_all(
        &mut self,
        calls: &[Message],
        deadline: Instant,
    ) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::new();
        let mut hello = None;
        if !self.started {
            out.extend_from_slice(AUTH);
            let msg = Message::method_call("/org/freedesktop/DBus", "Hello")
                .and_then(|m| m.destination("org.freedesktop.DBus"))
                .and_then(|m| m.interface("org.freedesktop.DBus"))
                .and_then(|m| m.build(&()))
                .map_err(|e| Failure::Lost(e.to_string()))?;
            out.extend_from_slice(&msg.data()[..]);
            hello = Some(msg.primary_header().serial_num());
            self.started = true;
        }
        for call in calls {
            out.extend_from_slice(&call.data()[..]);
        }
        self.write_all(&out, deadline)?;
        if !self.authenticated {
            self.read_auth(deadline)?;
        }
        let mut wanted: Vec<NonZeroU32> = hello.into_iter().collect();
        wanted.extend(calls.iter().map(|c| c.primary_header().serial_num()));
        let mut replies: Vec<Option<Reply>> = wanted.iter().map(|_| None).collect();
        while replies.iter().any(Option::is_none) {
            let (reply_to, reply) = self.read_message(deadline)?;
            if let Some(i) = wanted.iter().position(|s| Some(*s) == reply_to) {
                replies[i] = Some(reply);
            }
        }
        let mut replies: Vec<Reply> = replies.into_iter().flatten().collect();
        if hello.is_some() {
            let hello = replies.remove(0);
            if let Some(name) = hello.error {
                return Err(Failure::Lost(format!("the bus refused Hello: {name}")));
            }
        }
        Ok(replies)
    }

    fn write_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), Failure> {
        while !bytes.is_empty() {
            self.socket.set_write_timeout(Some(remaining(deadline)?))?;
            match self.socket.write(bytes) {
                Ok(0) => return Err(Failure::Lost("the bus closed the connection".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads more bytes into the buffer, before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Failure> {
        let mut chunk = [0u8; 4096];
        loop {
            self.socket.set_read_timeout(Some(remaining(deadline)?))?;
            match self.socket.read(&mut chunk) {
                Ok(0) => return Err(Failure::Lost("the bus closed the connection".into())),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The server's side of the handshake: `DATA` (the challenge to our empty identity),
    /// then `OK <guid>`; anything else is a refusal.
    fn read_auth(&mut self, deadline: Instant) -> Result<(), Failure> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                if line.starts_with("OK") {
                    self.authenticated = true;
                    return Ok(());
                }
                if line != "DATA" {
                    return Err(Failure::Lost(format!("the bus refused us: {line}")));
                }
            }
            if self.buf.len() > 4096 {
                return Err(Failure::Lost("the bus answered no handshake".into()));
            }
            self.fill(deadline)?;
        }
    }

    /// The next message: the serial it replies to (`None` for a signal or a call) and the
    /// reply.
    fn read_message(&mut self, deadline: Instant) -> Result<(Option<NonZeroU32>, Reply), Failure> {
        while self.buf.len() < 16 {
            self.fill(deadline)?;
        }
        let endian = match self.buf[0] {
            b'l' => Endian::Little,
            b'B' => Endian::Big,
            other => {
                return Err(Failure::Lost(format!(
                    "not a D-Bus message (0x{other:02x})"
                )));
            }
        };
        let u32_at = |buf: &[u8], i: usize| {
            let b = [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
            match endian {
                Endian::Little => u32::from_le_bytes(b),
                Endian::Big => u32::from_be_bytes(b),
            }
        };
        let body_len = u32_at(&self.buf, 4) as usize;
        let header_len = 16 + u32_at(&self.buf, 12) as usize;
        let body_start = header_len.next_multiple_of(8);
        let total = body_start.saturating_add(body_len);
        if total > MAX_MESSAGE {
            return Err(Failure::Lost(format!("a {total}-byte message")));
        }
        while self.buf.len() < total {
            self.fill(deadline)?;
        }
        let message: Vec<u8> = self.buf.drain(..total).collect();
        let kind = message[1];
        let fields = header_fields(&message[..header_len], endian)?;
        let reply = Reply {
            error: (kind == 3).then(|| fields.error.unwrap_or_default()),
            endian,
            signature: fields.signature,
            body: message[body_start..].to_vec(),
        };
        let reply_to = if kind == 2 || kind == 3 {
            fields.reply_serial
        } else {
            None
        };
        Ok((reply_to, reply))
    }
}

/// What a reply's header says about it.
struct Fields {
    reply_serial: Option<NonZeroU32>,
    error: Option<String>,
    signature: Signature,
}

fn header_fields(header: &[u8], endian: Endian) -> Result<Fields, Failure> {
    type Header<'h> = (u8, u8, u8, u8, u32, u32, Vec<(u8, Value<'h>)>);
    let data = Data::new(header, Context::new_dbus(endian, 0));
    let ((.., fields), _): (Header<'_>, _) = data
        .deserialize()
        .map_err(|e| Failure::Lost(format!("a malformed message header: {e}")))?;
    let mut out = Fields {
        reply_serial: None,
        error: None,
        signature: Signature::Unit,
    };
    for (code, value) in fields {
        match (code, value) {
            (4, Value::Str(s)) => out.error = Some(s.to_string()),
            (5, Value::U32(n)) => out.reply_serial = NonZeroU32::new(n),
            (8, Value::Signature(s)) => out.signature = s,
            _ => {}
        }
    }
    Ok(out)
}

/// Time left until `deadline`, or [`Failure::TimedOut`] when none is.
fn remaining(deadline: Instant) -> Result<std::time::Duration, Failure> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(Failure::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    /// A socket that accepts connections, and the bus address naming it.
    fn listener() -> (tempfile::TempDir, UnixListener, zbus::Address) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let listener = UnixListener::bind(&path).unwrap();
        let address = format!("unix:path={}", path.display()).parse().unwrap();
        (dir, listener, address)
    }

    #[test]
    fn a_bus_that_never_answers_times_out_at_the_deadline() {
        let (_dir, listener, address) = listener();
        let mut conn = Connection::open(&address).unwrap();
        let _accepted = listener.accept().unwrap();
        let start = Instant::now();
        let result = conn.call_all(&[], start + Duration::from_millis(300));
        let took = start.elapsed();
        assert!(
            matches!(result, Err(Failure::TimedOut)),
            "{:?}",
            result.err()
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn a_refused_handshake_is_a_lost_connection_not_a_timeout() {
        let (_dir, listener, address) = listener();
        let mut conn = Connection::open(&address).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"REJECTED EXTERNAL\r\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        match conn.call_all(&[], deadline) {
            Err(Failure::Lost(e)) => assert!(e.contains("REJECTED"), "{e}"),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn a_bus_that_hangs_up_is_a_lost_connection() {
        let (_dir, listener, address) = listener();
        let mut conn = Connection::open(&address).unwrap();
        drop(listener.accept().unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(matches!(
            conn.call_all(&[], deadline),
            Err(Failure::Lost(_))
        ));
    }
}
