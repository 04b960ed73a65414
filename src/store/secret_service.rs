//! A lean freedesktop Secret Service client, as a keyring-core credential store.
//!
//! It talks to the provider (GNOME Keyring, KWallet, KeePassXC) with plain zbus method calls:
//! no proxies, so no property caches, no `GetAll` or `AddMatch` round trips, and no helper
//! threads beyond what zbus needs to connect. A `get` is the bus `Hello`, then `OpenSession`
//! and `SearchItems` sent together, then one `Item.GetSecret`.
//!
//! # The `plain` session
//!
//! The Secret Service lets a client ask for the secret to be encrypted with a key agreed by
//! Diffie-Hellman (`dh-ietf1024-sha256-aes128-cbc-pkcs7`). That costs a 1024-bit modular
//! exponentiation on each side (most of a `get` before this module existed) and protects
//! nothing here: the secret travels over the user's private session-bus socket, which only
//! the same user (and the bus daemon, which could equally read the DH exchange) can reach;
//! anyone able to read that socket can also ptrace this process or the keyring daemon. So,
//! like libsecret's default `plain` mode, this store opens a `plain` session. The secret is
//! thus visible to the session bus daemon and to `dbus-monitor` run by the same user, and to
//! no one else. (As with the DH store, the secret is not wiped from zbus's message buffers.)
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
use std::future::Future;
use std::sync::Arc;

use keyring_core::api::{Credential, CredentialApi, CredentialStoreApi};
use keyring_core::{Entry, Error, Result};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

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
    conn: zbus::Connection,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("secret_service::Store")
            .field("unique_name", &self.conn.unique_name())
            .finish()
    }
}

impl Store {
    /// Connects to the session bus (`$DBUS_SESSION_BUS_ADDRESS`, else
    /// `$XDG_RUNTIME_DIR/bus`). Fails fast when there is no bus: zbus has no X11 autolaunch.
    /// The provider itself is first contacted (and D-Bus-activated if need be) by the first
    /// call on an entry.
    pub fn new() -> Result<Arc<Store>> {
        Store::connect(zbus::connection::Builder::session())
    }

    fn connect(builder: zbus::Result<zbus::connection::Builder<'_>>) -> Result<Arc<Store>> {
        let connect = async {
            builder?
                // The calls drive the connection themselves (see `run`): no executor thread.
                .internal_executor(false)
                .build()
                .await
        };
        let conn = zbus::block_on(connect).map_err(|e| {
            Error::PlatformFailure(msg(format!(
                "Failed to connect to the D-Bus session bus: {e}"
            )))
        })?;
        Ok(Arc::new(Store { conn }))
    }

    /// Runs `fut` on this thread, driving the connection (its socket reader task) alongside.
    fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        let executor = self.conn.executor();
        zbus::block_on(race(fut, async {
            loop {
                executor.tick().await;
            }
        }))
    }

    async fn call<R>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
    ) -> Result<R>
    where
        R: for<'de> serde::Deserialize<'de> + zbus::zvariant::Type,
    {
        let reply = self
            .conn
            .call_method(Some(BUS_NAME), path, Some(iface), method, body)
            .await
            .map_err(|e| call_error(method, e))?;
        reply.body().deserialize::<R>().map_err(|e| {
            Error::PlatformFailure(msg(format!(
                "unexpected reply to {method} from the Secret Service: {e}"
            )))
        })
    }

    /// `OpenSession("plain", "")`: see the module documentation for why not DH.
    async fn open_session(&self) -> Result<OwnedObjectPath> {
        let (_output, session): (zbus::zvariant::OwnedValue, OwnedObjectPath) = self
            .call(
                SERVICE_PATH,
                SERVICE_IFACE,
                "OpenSession",
                &("plain", Value::from("")),
            )
            .await?;
        Ok(session)
    }

    /// `SearchItems({service, username})` → (unlocked, locked).
    async fn search(
        &self,
        service: &str,
        user: &str,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)> {
        let attributes = HashMap::from([("service", service), ("username", user)]);
        self.call(SERVICE_PATH, SERVICE_IFACE, "SearchItems", &(attributes,))
            .await
    }

    /// Unlocks `objects` if that needs no prompt; a prompt means "locked" to us.
    async fn unlock(&self, objects: &[OwnedObjectPath]) -> Result<Vec<OwnedObjectPath>> {
        let (unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = self
            .call(SERVICE_PATH, SERVICE_IFACE, "Unlock", &(objects,))
            .await?;
        if is_prompt(&prompt) {
            return Err(locked_error());
        }
        Ok(unlocked)
    }

    /// The items matching the specifier, unlocked (without a prompt) where needed.
    async fn find_unlocked(&self, service: &str, user: &str) -> Result<Vec<OwnedObjectPath>> {
        let (mut unlocked, locked) = self.search(service, user).await?;
        if !locked.is_empty() {
            unlocked.extend(self.unlock(&locked).await?);
        }
        Ok(unlocked)
    }

    async fn get_secret(&self, service: &str, user: &str) -> Result<Vec<u8>> {
        let (session, found) = join(self.open_session(), self.search(service, user)).await;
        let session = session?;
        let (unlocked, locked) = found?;
        let item = match unlocked.into_iter().next() {
            Some(item) => item,
            None if locked.is_empty() => return Err(Error::NoEntry),
            None => self
                .unlock(&locked)
                .await?
                .into_iter()
                .next()
                .ok_or_else(locked_error)?,
        };
        let secret: Result<(WireSecret,)> = self
            .call(item.as_str(), ITEM_IFACE, "GetSecret", &(&session,))
            .await;
        let result = match secret {
            Ok(((_, _, value, _),)) => Ok(value),
            // Deleted between the search and now: a miss.
            Err(e) if is_no_such_object(&e) => Err(Error::NoEntry),
            Err(e) => Err(e),
        };
        self.close_session(&session).await;
        result
    }

    async fn set_secret(
        &self,
        service: &str,
        user: &str,
        label: &str,
        secret: &[u8],
    ) -> Result<()> {
        let (session, collection) = join(self.open_session(), self.default_collection()).await;
        let (session, collection) = (session?, collection?);
        let attributes = HashMap::from([
            ("service", service),
            ("username", user),
            ("xdg:schema", GENERIC_SCHEMA),
        ]);
        let properties = HashMap::from([
            (format!("{ITEM_IFACE}.Label"), Value::from(label)),
            (format!("{ITEM_IFACE}.Attributes"), Value::from(attributes)),
        ]);
        let wire: (&ObjectPath<'_>, &[u8], &[u8], &str) =
            (&session.as_ref(), b"", secret, "text/plain");
        let body = (&properties, &wire, true);
        let mut result = self
            .call::<(OwnedObjectPath, OwnedObjectPath)>(
                collection.as_str(),
                COLLECTION_IFACE,
                "CreateItem",
                &body,
            )
            .await;
        if matches!(result, Err(Error::NoStorageAccess(_))) {
            // The collection is locked: unlock it if that needs no prompt, then retry once.
            self.unlock(std::slice::from_ref(&collection)).await?;
            result = self
                .call(collection.as_str(), COLLECTION_IFACE, "CreateItem", &body)
                .await;
        }
        self.close_session(&session).await;
        let (_item, prompt) = result?;
        if is_prompt(&prompt) {
            return Err(locked_error());
        }
        Ok(())
    }

    /// The collection behind the `default` alias (the login keyring).
    async fn default_collection(&self) -> Result<OwnedObjectPath> {
        let (path,): (OwnedObjectPath,) = self
            .call(SERVICE_PATH, SERVICE_IFACE, "ReadAlias", &("default",))
            .await?;
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

    async fn delete(&self, service: &str, user: &str) -> Result<()> {
        let items = self.find_unlocked(service, user).await?;
        if items.is_empty() {
            return Err(Error::NoEntry);
        }
        for item in &items {
            match self.call(item.as_str(), ITEM_IFACE, "Delete", &()).await {
                Ok((prompt,)) if is_prompt(&prompt) => return Err(locked_error()),
                Ok((_,)) => {}
                // Already gone: that is what we wanted.
                Err(e) if is_no_such_object(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closing is a courtesy (the provider drops our sessions when we leave the bus), so it
    /// is fire-and-forget: no round trip.
    async fn close_session(&self, session: &OwnedObjectPath) {
        let close = zbus::Message::method_call(session.as_str(), "Close")
            .and_then(|m| m.destination(BUS_NAME))
            .and_then(|m| m.interface("org.freedesktop.Secret.Session"))
            .and_then(|m| m.with_flags(zbus::message::Flags::NoReplyExpected))
            .and_then(|m| m.build(&()));
        if let Ok(close) = close {
            let _ = self.conn.send(&close).await;
        }
    }
}

impl CredentialStoreApi for Store {
    fn vendor(&self) -> String {
        "docker-credential-gitlab Secret Service store (plain session, zbus)".into()
    }

    fn id(&self) -> String {
        format!(
            "secret-service:{}",
            self.conn.unique_name().map_or("", |n| n.as_str())
        )
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
                conn: self.conn.clone(),
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
        let s = &self.store;
        s.run(s.set_secret(&self.service, &self.user, &self.label, secret))
    }

    fn get_secret(&self) -> Result<Vec<u8>> {
        let s = &self.store;
        s.run(s.get_secret(&self.service, &self.user))
    }

    fn delete_credential(&self) -> Result<()> {
        let s = &self.store;
        s.run(s.delete(&self.service, &self.user))
    }

    fn get_credential(&self) -> Result<Option<Arc<Credential>>> {
        let s = &self.store;
        if s.run(s.find_unlocked(&self.service, &self.user))?
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
fn call_error(method: &str, e: zbus::Error) -> Error {
    let (name, detail) = match &e {
        zbus::Error::MethodError(name, detail, _) => {
            (name.as_str().to_owned(), detail.clone().unwrap_or_default())
        }
        zbus::Error::FDO(fdo) => {
            use zbus::DBusError;
            (
                fdo.name().as_str().to_owned(),
                fdo.description().unwrap_or_default().to_owned(),
            )
        }
        other => (String::new(), other.to_string()),
    };
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
        .unwrap_or(&name)
        .to_owned();
    Error::PlatformFailure(msg(format!(
        "Secret Service {method} failed: {name} {detail}"
    )))
}

/// Polls both futures until both are done (for two calls in flight at once).
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    futures_lite::future::zip(a, b).await
}

/// The output of `fut`, polling `background` (which never finishes) alongside it.
async fn race<T>(fut: impl Future<Output = T>, background: impl Future<Output = ()>) -> T {
    futures_lite::future::or(fut, async {
        background.await;
        std::future::pending().await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_waits_for_both() {
        let (a, b) = zbus::block_on(join(async { 1 }, async { "two" }));
        assert_eq!((a, b), (1, "two"));
    }

    #[test]
    fn locked_errors_say_locked() {
        let e = call_error("CreateItem", zbus::Error::Failure("x".into()));
        assert!(matches!(e, Error::PlatformFailure(_)));
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
        let e = Store::connect(zbus::connection::Builder::address(address.as_str())).unwrap_err();
        assert!(matches!(e, Error::PlatformFailure(_)), "{e}");
        assert!(e.to_string().contains("Failed to connect"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
