//! The client's side of an upgraded connection. A request that asks to
//! upgrade carries a [`ClientUpgrade`] in its extensions; when its
//! response is a 101, the connection driver writes the head and hands the
//! socket, with any bytes it read past the request head, through it to the
//! task that joins the client to the upstream.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

/// A client connection after its 101.
pub struct Upgraded {
    /// The client's connection, whatever its transport.
    pub stream: Box<dyn crate::transport::client::Duplex>,
    /// Bytes the client sent after the request head, already read: they
    /// belong to the upstream.
    pub read: Bytes,
}

/// The driver went away without a 101 being written (the client closed,
/// or the response head could not be sent).
#[derive(Debug, thiserror::Error)]
#[error("client connection closed before the upgrade")]
pub struct UpgradeLost;

/// The handler's side: waits for the upgraded connection. (Cloneable, as
/// `http`'s extensions require; only the first taker gets the socket.)
#[derive(Clone)]
pub struct ClientUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// The driver's side: sends the connection once the 101 is out.
pub struct UpgradeSender(oneshot::Sender<Upgraded>);

/// A new pair for a request that asks to upgrade.
pub fn pair() -> (UpgradeSender, ClientUpgrade) {
    let (tx, rx) = oneshot::channel();
    (
        UpgradeSender(tx),
        ClientUpgrade(Arc::new(Mutex::new(Some(rx)))),
    )
}

impl ClientUpgrade {
    /// The client's connection, once its 101 has been written.
    pub async fn wait(self) -> Result<Upgraded, UpgradeLost> {
        let receiver = self.0.lock().ok().and_then(|mut r| r.take());
        match receiver {
            Some(rx) => rx.await.map_err(|_| UpgradeLost),
            None => Err(UpgradeLost),
        }
    }
}

impl UpgradeSender {
    /// Hands the connection over (dropped if nobody waits any more).
    pub fn send(self, upgraded: Upgraded) {
        let _ = self.0.send(upgraded);
    }
}
