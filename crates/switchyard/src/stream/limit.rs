//! `limit_conn` in stream: sessions counted per key value in a zone
//! shared by every worker thread; a session over a limit ends with 503
//! (ngx_stream_limit_conn_module, preaccess phase).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::model::{LimitConnZone, StreamServer};
use crate::observe::error_log;

use super::vars::Session;

/// The counts of one `limit_conn_zone`.
#[derive(Debug)]
pub struct ZoneCounts {
    /// The zone's configuration (its key).
    pub config: Arc<LimitConnZone>,
    counts: Mutex<HashMap<Vec<u8>, u32>>,
}

impl ZoneCounts {
    /// An empty zone.
    pub fn new(config: Arc<LimitConnZone>) -> Arc<ZoneCounts> {
        Arc::new(ZoneCounts {
            config,
            counts: Mutex::new(HashMap::new()),
        })
    }
}

/// One counted session in one zone: the count goes down when dropped.
pub(crate) struct Held {
    zone: Arc<ZoneCounts>,
    key: Vec<u8>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.zone.counts.lock() {
            if let Some(n) = counts.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&self.key);
                }
            }
        }
    }
}

/// Counts `session` in each of the server's `limit_conn` zones. `Err`
/// means a limit was reached (logged as nginx logs it); the session must
/// end with 503. The counts taken are released when the returned guards
/// drop.
pub(crate) fn enter(
    session: &mut Session,
    server: &StreamServer,
    zones: &HashMap<String, Arc<ZoneCounts>>,
) -> Result<Vec<Held>, ()> {
    let mut held = Vec::new();
    for limit in &server.limit_conn {
        let Some(zone) = zones.get(&limit.zone.name) else {
            continue;
        };
        let key = limit.zone.key.render_bytes(&*session);
        if key.is_empty() {
            // nginx counts nothing for an empty key.
            continue;
        }
        if key.len() > 255 {
            error_log::error(
                Some(session.id),
                &format!(
                    "the value of the \"{}\" key is more than 255 bytes: \"{}\"{}",
                    limit.zone.key_text,
                    String::from_utf8_lossy(&key),
                    session.context()
                ),
            );
            continue;
        }
        let Ok(mut counts) = zone.counts.lock() else {
            continue;
        };
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= limit.max {
            drop(counts);
            error_log::log(
                server.limit_conn_log_level,
                Some(session.id),
                &format!(
                    "limiting connections{} by zone \"{}\"{}",
                    if server.limit_conn_dry_run {
                        ", dry run,"
                    } else {
                        ""
                    },
                    limit.zone.name,
                    session.context()
                ),
            );
            if server.limit_conn_dry_run {
                session.limit_conn_status = Some("REJECTED_DRY_RUN");
                continue;
            }
            session.limit_conn_status = Some("REJECTED");
            return Err(());
        }
        *count += 1;
        drop(counts);
        session.limit_conn_status.get_or_insert("PASSED");
        held.push(Held {
            zone: zone.clone(),
            key,
        });
    }
    Ok(held)
}
