//! A lean freedesktop Secret Service client, as a keyring-core credential store.
//!
//! It talks to the provider (GNOME Keyring, KWallet, KeePassXC) over one blocking session-bus
//! connection ([`super::dbus`]): no proxies, so no property caches, no `Introspect`, `GetAll`
//! or `AddMatch` round trips; no thread and no async runtime. A `get` is two round trips:
//! the handshake, `Hello`, `OpenSession` and `SearchItems` in one write, then one
//! `Item.GetSecret` (a third, `Unlock`, only for a locked item).
//!
//! # Bounded time
//!
//! Every operation has [`CALL_DEADLINE`] from its start: each socket read and write waits at
//! most what is left of it, and when none is left the call fails with [`TimedOut`] (which
//! the store layer reports as "did not answer"). A provider that never answers, or a bus
//! that accepts the call and never forwards it, cannot hold a `get` longer than that.
//!
//! # The `plain` session
//!
//! The Secret Service lets a client ask for the secret to be encrypted with a key agreed by
//! Diffie-Hellman (`dh-ietf1024-sha256-aes128-cbc-pkcs7`). That costs a 1024-bit modular
//! exponentiation on each side (most of a `get` before this module existed) and protects
//! nothing here: the secret travels over the user's private session-bus socket, which only
//! the same user (and the bus daemon, which could equally read the DH exchange) can reach;
//! anyone able to read that socket can also ptrace this process or the keyring daemon. So,
//! like libsecret's default `plain` mode, this store opens a `plain` session, once per
//! connection (the provider closes it when we leave the bus). The secret is thus visible to
//! the session bus daemon and to `dbus-monitor` run by the same user, and to no one else.
//! (The secret is not wiped from the message buffers.)
//!
//! # Items
//!
//! Items carry exactly the attributes `service` and `username` (plus `xdg:schema` =
//! `org.freedesktop.Secret.Generic`), the same as the keyring-rs Secret Service store wrote
//! before, so existing items are found and `secret-tool lookup service … username …` finds
//! ours. New items go into the collection behind the `default` alias, replacing an item with
//! the same attributes there.
//!
//! # Never prompting
//!
//! A locked item or collection is unlocked only if the provider can do so without a prompt.
//! When it answers with a prompt, the prompt is not run (it could wait forever, or pop up a
//! dialog in the middle of `docker pull`); the call fails with
//! [`Error::NoStorageAccess`] saying the collection is locked.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keyring_core::api::{Credential, CredentialApi, CredentialStoreApi};
use keyring_core::{Entry, Error, Result};
use zbus::Message as Call;
use zbus::zvariant::{DynamicDeserialize, DynamicType, ObjectPath, OwnedObjectPath, Value};

use super::CALL_DEADLINE;
use super::dbus::{Connection, Failure, Reply};

const BUS_NAME: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";
const ITEM_IFACE: &str = "org.freedesktop.Secret.Item";
const GENERIC_SCHEMA: &str = "org.freedesktop.Secret.Generic";

/// A secret on the wire: `(session, parameters, value, content type)`.
type WireSecret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

/// The Secret Service store: one session-bus connection, shared by its entries.
pub struct Store {
    address: zbus::Address,
    bus: Arc<Mutex<Option<Bus>>>,
}

/// The live connection and the `plain` session opened on it (once, by the first call).
struct Bus {
    conn: Connection,
    session: Option<OwnedObjectPath>,
}

/// The call did not end within [`CALL_DEADLINE`] (carried inside
/// [`Error::PlatformFailure`]; the store layer reports it as a timeout).
#[derive(Debug)]
pub(crate) struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Secret Service did not answer in time")
    }
}

impl std::error::Error for TimedOut {}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("secret_service::Store")
            .field("address", &self.address.to_string())
            .finish()
    }
}

/// One method call to the provider, built but not sent.
fn call(
    path: &str,
    iface: &str,
    method: &str,
    body: &(impl serde::Serialize + DynamicType),
) -> Result<Call> {
    Call::method_call(path, method)
        .and_then(|m| m.destination(BUS_NAME))
        .and_then(|m| m.interface(iface))
        .and_then(|m| m.build(body))
        .map_err(|e| Error::PlatformFailure(msg(format!("cannot build the {method} call: {e}"))))
}

/// The body of a return, or the mapped error of an error reply.
fn answer<R: for<'d> DynamicDeserialize<'d>>(method: &str, reply: &Reply) -> Result<R> {
    if let Some(name) = &reply.error {
        return Err(call_error(method, name, &reply.error_text()));
    }
    reply.body().map_err(|e| {
        Error::PlatformFailure(msg(format!(
            "unexpected reply to {method} from the Secret Service: {e}"
        )))
    })
}

impl Store {
    /// Connects to the session bus (`$DBUS_SESSION_BUS_ADDRESS`, else
    /// `$XDG_RUNTIME_DIR/bus`). Fails fast when there is no bus: there is no X11 autolaunch.
    /// Nothing is sent yet: the handshake goes out with the first call on an entry, which
    /// also first contacts (and D-Bus-activates if need be) the provider.
    pub fn new() -> Result<Arc<Store>> {
        Store::connect(zbus::Address::session())
    }

    fn connect(address: zbus::Result<zbus::Address>) -> Result<Arc<Store>> {
        let failed = |e: &dyn fmt::Display| {
            Error::PlatformFailure(msg(format!(
                "Failed to connect to the D-Bus session bus: {e}"
            )))
        };
        let address = address.map_err(|e| failed(&e))?;
        let conn = Connection::open(&address).map_err(|e| failed(&e))?;
        let bus = Bus {
            conn,
            session: None,
        };
        Ok(Arc::new(Store {
            address,
            bus: Arc::new(Mutex::new(Some(bus))),
        }))
    }

    /// Runs `op` on the connection (connecting again when an earlier call lost it), within
    /// [`CALL_DEADLINE`] from now.
    fn run<T>(&self, op: impl FnOnce(&mut Session<'_>) -> Result<T>) -> Result<T> {
        let mut guard = self.bus.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let conn = Connection::open(&self.address).map_err(|e| {
                Error::PlatformFailure(msg(format!(
                    "Secret Service call failed: disconnected from the session bus ({e})"
                )))
            })?;
            *guard = Some(Bus {
                conn,
                session: None,
            });
        }
        let bus = guard.as_mut().expect("connected above");
        let mut session = Session {
            bus,
            deadline: Instant::now() + CALL_DEADLINE,
            lost: false,
        };
        let result = op(&mut session);
        if session.lost {
            // A late answer or a broken socket: the next call starts afresh.
            *guard = None;
        } else if matches!(result, Err(Error::PlatformFailure(_))) {
            // The provider may have restarted (its sessions died with it): open a new one.
            bus.session = None;
        }
        result
    }
}

/// One operation's view of the connection: its deadline, and whether the connection broke.
struct Session<'b> {
    bus: &'b mut Bus,
    deadline: Instant,
    lost: bool,
}

impl Session<'_> {
    /// Sends `calls` together (after `OpenSession` when this connection has no session yet)
    /// and returns their replies.
    fn batch(&mut self, method: &str, mut calls: Vec<Call>) -> Result<Vec<Reply>> {
        let opening = self.bus.session.is_none();
        if opening {
            let open = call(
                SERVICE_PATH,
                SERVICE_IFACE,
                "OpenSession",
                &("plain", Value::from("")),
            )?;
            calls.insert(0, open);
        }
        let mut replies = match self.bus.conn.call_all(&calls, self.deadline) {
            Ok(replies) => replies,
            Err(failure) => {
                self.lost = true;
                return Err(match failure {
                    Failure::TimedOut => Error::PlatformFailure(Box::new(TimedOut)),
                    Failure::Lost(e) => Error::PlatformFailure(msg(format!(
                        "Secret Service {method} failed: disconnected from the session bus ({e})"
                    ))),
                });
            }
        };
        if opening {
            let opened = replies.remove(0);
            let (_output, session): (zbus::zvariant::OwnedValue, OwnedObjectPath) =
                answer("OpenSession", &opened)?;
            self.bus.session = Some(session);
        }
        Ok(replies)
    }

    /// One call, answered.
    fn call<R>(&mut self, message: Call, method: &str) -> Result<R>
    where
        R: for<'de> DynamicDeserialize<'de>,
    {
        let replies = self.batch(method, vec![message])?;
        answer(method, &replies[0])
    }

    fn session(&self) -> &OwnedObjectPath {
        self.bus
            .session
            .as_ref()
            .expect("opened by the first batch")
    }

    /// `SearchItems({service, username})` → (unlocked, locked).
    fn search(
        &mut self,
        service: &str,
        user: &str,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)> {
        let attributes = HashMap::from([("service", service), ("username", user)]);
        let search = call(SERVICE_PATH, SERVICE_IFACE, "SearchItems", &(attributes,))?;
        self.call(search, "SearchItems")
    }

    /// Unlocks `objects` if that needs no prompt; a prompt means "locked" to us.
    fn unlock(&mut self, objects: &[OwnedObjectPath]) -> Result<Vec<OwnedObjectPath>> {
        let unlock = call(SERVICE_PATH, SERVICE_IFACE, "Unlock", &(objects,))?;
        let (unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
            self.call(unlock, "Unlock")?;
        if is_prompt(&prompt) {
            return Err(locked_error());
        }
        Ok(unlocked)
    }

    /// The items matching the specifier, unlocked (without a prompt) where needed.
    fn find_unlocked(&mut self, service: &str, user: &str) -> Result<Vec<OwnedObjectPath>> {
        let (mut unlocked, locked) = self.search(service, user)?;
        if !locked.is_empty() {
            unlocked.extend(self.unlock(&locked)?);
        }
        Ok(unlocked)
    }

    fn get_secret(&mut self, service: &str, user: &str) -> Result<Vec<u8>> {
        let (unlocked, locked) = self.search(service, user)?;
        let item = match unlocked.into_iter().next() {
            Some(item) => item,
            None if locked.is_empty() => return Err(Error::NoEntry),
            None => self
                .unlock(&locked)?
                .into_iter()
                .next()
                .ok_or_else(locked_error)?,
        };
        let get = call(item.as_str(), ITEM_IFACE, "GetSecret", &(self.session(),))?;
        match self.call::<(WireSecret,)>(get, "GetSecret") {
            Ok(((_, _, value, _),)) => Ok(value),
            // Deleted between the search and now: a miss.
            Err(e) if is_no_such_object(&e) => Err(Error::NoEntry),
            Err(e) => Err(e),
        }
    }

    fn set_secret(&mut self, service: &str, user: &str, label: &str, secret: &[u8]) -> Result<()> {
        let collection = self.default_collection()?;
        let attributes = HashMap::from([
            ("service", service),
            ("username", user),
            ("xdg:schema", GENERIC_SCHEMA),
        ]);
        let properties = HashMap::from([
            (format!("{ITEM_IFACE}.Label"), Value::from(label)),
            (format!("{ITEM_IFACE}.Attributes"), Value::from(attributes)),
        ]);
        let session = self.session().clone();
        let wire: (&ObjectPath<'_>, &[u8], &[u8], &str) =
            (&session.as_ref(), b"", secret, "text/plain");
        let body = (&properties, &wire, true);
        let create = || call(collection.as_str(), COLLECTION_IFACE, "CreateItem", &body);
        let mut result = self.call::<(OwnedObjectPath, OwnedObjectPath)>(create()?, "CreateItem");
        if matches!(result, Err(Error::NoStorageAccess(_))) {
            // The collection is locked: unlock it if that needs no prompt, then retry once.
            self.unlock(std::slice::from_ref(&collection))?;
            result = self.call(create()?, "CreateItem");
        }
        let (_item, prompt) = result?;
        if is_prompt(&prompt) {
            return Err(locked_error());
        }
        Ok(())
    }

    /// The collection behind the `default` alias (the login keyring).
    fn default_collection(&mut self) -> Result<OwnedObjectPath> {
        let read = call(SERVICE_PATH, SERVICE_IFACE, "ReadAlias", &("default",))?;
        let (path,): (OwnedObjectPath,) = self.call(read, "ReadAlias")?;
        if path.as_str() == "/" {
            // Creating one would prompt for a password; leave that to the desktop.
            return Err(Error::NoStorageAccess(msg(
                "the Secret Service has no default collection (login keyring); create one, \
                 e.g. with Seahorse, and make it the default"
                    .into(),
            )));
        }
        Ok(path)
    }

    fn delete(&mut self, service: &str, user: &str) -> Result<()> {
        let items = self.find_unlocked(service, user)?;
        if items.is_empty() {
            return Err(Error::NoEntry);
        }
        for item in &items {
            let delete = call(item.as_str(), ITEM_IFACE, "Delete", &())?;
            match self.call::<(OwnedObjectPath,)>(delete, "Delete") {
                Ok((prompt,)) if is_prompt(&prompt) => return Err(locked_error()),
                Ok((_,)) => {}
                // Already gone: that is what we wanted.
                Err(e) if is_no_such_object(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl CredentialStoreApi for Store {
    fn vendor(&self) -> String {
        "docker-credential-gitlab Secret Service store (plain session, blocking D-Bus)".into()
    }

    fn id(&self) -> String {
        format!("secret-service:{}", self.address)
    }

    fn build(
        &self,
        service: &str,
        user: &str,
        modifiers: Option<&HashMap<&str, &str>>,
    ) -> Result<Entry> {
        if service.is_empty() {
            return Err(Error::Invalid("service".into(), "cannot be empty".into()));
        }
        if user.is_empty() {
            return Err(Error::Invalid("user".into(), "cannot be empty".into()));
        }
        let label = modifiers
            .and_then(|m| m.get("label"))
            .map(|l| l.to_string())
            .unwrap_or_else(|| default_label(user));
        let cred = Cred {
            store: Arc::new(Store {
                address: self.address.clone(),
                bus: self.bus.clone(),
            }),
            service: service.to_owned(),
            user: user.to_owned(),
            label,
        };
        Ok(Entry::new_with_credential(Arc::new(cred)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The label an item gets when the entry has no `label` modifier.
fn default_label(host: &str) -> String {
    format!("Registry credentials for {host} (docker-credential-gitlab)")
}

/// One `(service, username)` pair in the Secret Service.
#[derive(Clone)]
pub struct Cred {
    store: Arc<Store>,
    service: String,
    user: String,
    label: String,
}

impl fmt::Debug for Cred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("secret_service::Cred")
            .field("service", &self.service)
            .field("user", &self.user)
            .field("label", &self.label)
            .finish()
    }
}

impl CredentialApi for Cred {
    fn set_secret(&self, secret: &[u8]) -> Result<()> {
        self.store
            .run(|s| s.set_secret(&self.service, &self.user, &self.label, secret))
    }

    fn get_secret(&self) -> Result<Vec<u8>> {
        self.store.run(|s| s.get_secret(&self.service, &self.user))
    }

    fn delete_credential(&self) -> Result<()> {
        self.store.run(|s| s.delete(&self.service, &self.user))
    }

    fn get_credential(&self) -> Result<Option<Arc<Credential>>> {
        if self
            .store
            .run(|s| s.find_unlocked(&self.service, &self.user))?
            .is_empty()
        {
            return Err(Error::NoEntry);
        }
        Ok(Some(Arc::new(self.clone())))
    }

    fn get_specifiers(&self) -> Option<(String, String)> {
        Some((self.service.clone(), self.user.clone()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A platform error carrying a message.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

fn msg(s: String) -> keyring_core::error::PlatformError {
    Box::new(Message(s))
}

fn locked_error() -> Error {
    Error::NoStorageAccess(msg(
        "the Secret Service collection is locked and unlocking it needs a prompt".into(),
    ))
}

/// Whether a call failed because the object (an item) no longer exists.
fn is_no_such_object(e: &Error) -> bool {
    matches!(e, Error::PlatformFailure(e)
        if e.to_string().contains("NoSuchObject") || e.to_string().contains("UnknownObject"))
}

/// A prompt object path, as opposed to "/" (no prompt needed).
fn is_prompt(path: &OwnedObjectPath) -> bool {
    path.as_str() != "/"
}

/// Maps a failed call: "is locked" errors to [`Error::NoStorageAccess`], the rest to
/// [`Error::PlatformFailure`] with the D-Bus error name in the text.
fn call_error(method: &str, name: &str, detail: &str) -> Error {
    if name == "org.freedesktop.Secret.Error.IsLocked" {
        return Error::NoStorageAccess(msg(format!(
            "the Secret Service collection is locked ({method}: {detail})"
        )));
    }
    if name == "org.freedesktop.DBus.Error.ServiceUnknown" {
        return Error::PlatformFailure(msg(format!(
            "no Secret Service provider on the session bus ({detail})"
        )));
    }
    let name = name
        .strip_prefix("org.freedesktop.DBus.Error.")
        .unwrap_or(name);
    Error::PlatformFailure(msg(format!(
        "Secret Service {method} failed: {name} {detail}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_errors_say_locked() {
        let e = call_error("CreateItem", "org.freedesktop.DBus.Error.Failed", "x");
        assert!(matches!(e, Error::PlatformFailure(_)));
        assert!(
            e.to_string()
                .ends_with("Secret Service CreateItem failed: Failed x"),
            "{e}"
        );
        let e = call_error("CreateItem", "org.freedesktop.Secret.Error.IsLocked", "x");
        assert!(matches!(e, Error::NoStorageAccess(_)), "{e}");
        assert!(locked_error().to_string().contains("locked"));
    }

    #[test]
    fn prompt_paths() {
        assert!(!is_prompt(&OwnedObjectPath::try_from("/").unwrap()));
        assert!(is_prompt(
            &OwnedObjectPath::try_from("/org/freedesktop/secrets/prompt/p1").unwrap()
        ));
    }

    #[test]
    fn no_bus_is_a_quick_platform_failure() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}", dir.path().join("no-bus").display());
        let start = std::time::Instant::now();
        let e = Store::connect(address.parse()).unwrap_err();
        assert!(matches!(e, Error::PlatformFailure(_)), "{e}");
        assert!(e.to_string().contains("Failed to connect"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
