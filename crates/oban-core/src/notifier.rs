//! LISTEN/NOTIFY: the payload encodings Oban uses, publishing, and a listener that survives
//! lost connections.
//!
//! The listener holds one dedicated connection (which may go to a different URL than the pool,
//! e.g. straight to PostgreSQL while the pool goes through a transaction-mode pooler). It proves
//! its own liveness: every `heartbeat` the node publishes a `sonar` ping and expects to hear it
//! back; a connection that has heard nothing for three heartbeats is dropped and replaced, with
//! jittered backoff. PostgreSQL keeps no notifications for absent listeners, so producers also
//! poll the table on their own timer and are woken after every reconnect: a dead listener slows
//! wake-ups to the poll interval but never strands a job.
//!
//! Each connection first proves that notifications reach it on a channel of its own, and only
//! then listens on the Oban channels. Through a transaction-mode pooler a LISTEN stays behind
//! on whichever server connection ran it, and that connection later hands every notification
//! to whichever client it serves next, in the middle of that client's query; so a connection
//! that does not hear its probe never listens on the busy Oban channels, and the probe is
//! repeated only every [`SILENT_RETRY_HEARTBEATS`] heartbeats.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgExecutor, PgPool, Row};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::reconnect_delay;
use crate::{Db, Error, Prefix, Result};

const NOTIFY: &str = include_str!("sql/notify.sql");
const LISTENING_CHANNELS: &str = include_str!("sql/listening_channels.sql");

/// After a connection that never heard its probe, the next attempt waits this many heartbeats
/// (five minutes by default): the node runs on polling meanwhile.
pub const SILENT_RETRY_HEARTBEATS: u32 = 60;

/// JSON at most this long is sent as is; longer payloads are compressed (Elixir's threshold).
const PLAIN_LIMIT: usize = 512;

/// The Oban channels, each `<prefix>.oban_<name>` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `{"queue": Q}`: jobs became available in Q.
    Insert,
    /// pause, resume, scale, pkill, start, stop.
    Signal,
    /// Leadership changes (`{"down": name}`, oban-py's `resign`).
    Leader,
    /// Elixir's connectivity pings, `{"node": N, "ping": true}`.
    Sonar,
    /// Queue status checks for Oban Web.
    Gossip,
    /// Job metrics for Oban Web.
    Metrics,
    /// Crontabs for Oban Web.
    Cronitor,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 7] = [
        Channel::Insert,
        Channel::Signal,
        Channel::Leader,
        Channel::Sonar,
        Channel::Gossip,
        Channel::Metrics,
        Channel::Cronitor,
    ];

    /// The name after `oban_`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Insert => "insert",
            Channel::Signal => "signal",
            Channel::Leader => "leader",
            Channel::Sonar => "sonar",
            Channel::Gossip => "gossip",
            Channel::Metrics => "metrics",
            Channel::Cronitor => "cronitor",
        }
    }

    /// The channel a full channel name belongs to, for this prefix.
    pub fn parse(prefix: &Prefix, full: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|channel| prefix.channel(channel.name()) == full)
    }
}

/// The largest payload PostgreSQL accepts (`payload string too long` from 8,000 bytes on).
pub const MAX_PAYLOAD: usize = 7_999;

/// Packs `items` into messages made by `build` whose encoded payloads fit [`MAX_PAYLOAD`]:
/// one message when everything fits, otherwise each half on its own, recursively. Returns the
/// messages, and the items too large to send even alone.
pub(crate) fn split_to_fit<T: Clone>(
    items: Vec<T>,
    build: impl Fn(&[T]) -> Value,
) -> (Vec<Value>, Vec<T>) {
    fn split<T: Clone>(
        items: &[T],
        build: &dyn Fn(&[T]) -> Value,
        messages: &mut Vec<Value>,
        too_big: &mut Vec<T>,
    ) {
        if items.is_empty() {
            return;
        }
        let message = build(items);
        if encode_payload(&message).len() <= MAX_PAYLOAD {
            messages.push(message);
        } else if let [item] = items {
            too_big.push(item.clone());
        } else {
            let (first, second) = items.split_at(items.len() / 2);
            split(first, build, messages, too_big);
            split(second, build, messages, too_big);
        }
    }
    let (mut messages, mut too_big) = (Vec::new(), Vec::new());
    split(&items, &build, &mut messages, &mut too_big);
    (messages, too_big)
}

/// Encodes a payload as Oban does: compact JSON up to 512 bytes, bare base64 of gzip above
/// (Elixir prefixes `Z:`, which oban-py 0.7 cannot read; the bare form every version reads).
pub fn encode_payload(message: &Value) -> String {
    let json = message.to_string();
    if json.len() <= PLAIN_LIMIT {
        return json;
    }
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(json.as_bytes())
        .expect("writing to a Vec cannot fail");
    BASE64.encode(gzip.finish().expect("writing to a Vec cannot fail"))
}

/// Decodes any payload form a node may send: plain JSON, `Z:` + base64(gzip) (Elixir ≥ 2.21)
/// or bare base64(gzip) (Elixir < 2.21, oban-py), told apart by their prefixes as Elixir does
/// (bare gzip always starts `H4sI`, the base64 of gzip's magic bytes). Anything else is JSON,
/// so every value [`encode_payload`] writes reads back, not only objects and arrays.
pub fn decode_payload(payload: &str) -> Result<Value> {
    let trimmed = payload.trim_start();
    let encoded = match trimmed.strip_prefix("Z:") {
        Some(encoded) => encoded,
        None if trimmed.starts_with("H4sI") => trimmed,
        None => return Ok(serde_json::from_str(trimmed)?),
    };
    let compressed = BASE64.decode(encoded.trim_end()).map_err(|error| {
        Error::Notification(format!("payload is neither JSON nor base64: {error}"))
    })?;
    let mut json = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .take(1 << 20)
        .read_to_end(&mut json)
        .map_err(|error| Error::Notification(format!("payload is not gzip: {error}")))?;
    Ok(serde_json::from_slice(&json)?)
}

/// Publishes `messages` on `channel` in one round trip, encoded with [`encode_payload`].
/// On a transaction (`&mut *tx`) they are delivered at commit.
pub async fn publish<'e>(
    executor: impl PgExecutor<'e>,
    prefix: &Prefix,
    channel: Channel,
    messages: &[Value],
) -> Result<()> {
    let payloads: Vec<String> = messages.iter().map(encode_payload).collect();
    sqlx::query(NOTIFY)
        .bind(prefix.channel(channel.name()))
        .bind(payloads)
        .execute(executor)
        .await?;
    Ok(())
}

/// A decoded notification.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Which channel it came on.
    pub channel: Channel,
    /// The decoded JSON payload.
    pub payload: Value,
}

/// The listener's view of its connection, for health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerHealth {
    /// Not connected yet, or reconnecting; `since` is when notifications stopped.
    Down {
        /// When the listener last stopped hearing.
        since: Instant,
    },
    /// Connected and hearing its own heartbeat.
    Up,
    /// Not listening by configuration (behind a transaction-mode pooler with no listen URL):
    /// the node runs on polling, which is healthy.
    Disabled,
}

/// Runs the listener until `stop`; see the module docs.
pub(crate) struct Listener {
    pub pool: Db,
    pub listen_pool: PgPool,
    pub prefix: Prefix,
    pub node: String,
    pub heartbeat: Duration,
    pub deliver: mpsc::Sender<Notification>,
    pub health: watch::Sender<ListenerHealth>,
    /// Told after every (re)connect, so that producers look for jobs whose wake-up was missed.
    pub reconnected: mpsc::Sender<()>,
    /// The only way to the database is a transaction-mode pooler: never LISTEN, run on polling.
    pub polling_only: bool,
}

impl Listener {
    /// A single-connection pool for LISTEN, built from `options` (a URL other than the main
    /// pool's when the pool goes through a pooler).
    pub fn pool_for(options: sqlx::postgres::PgConnectOptions) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options)
    }

    pub async fn run(self, stop: CancellationToken) {
        if self.polling_only {
            // Even a probe would leave a LISTEN on a server connection that the pooler shares,
            // which then hands the probe's notification to another client mid-query.
            tracing::warn!(
                "the pool goes through a transaction-mode pooler (behind_pooler / --no-statement-cache) and no \
                 listen URL is set: LISTEN cannot work through the pooler, so this node is running on polling. \
                 Point the listener at PostgreSQL directly (--listen-url / OBAN_LISTEN_URL, \
                 Config::listen_options) for instant wake-ups."
            );
            self.health.send_replace(ListenerHealth::Disabled);
            return;
        }
        let channels: Vec<String> = Channel::ALL
            .iter()
            .map(|channel| self.prefix.channel(channel.name()))
            .collect();
        let mut failures = 0u32;
        let mut warned_silent = false;
        loop {
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                outcome = self.session(&channels, &stop) => outcome,
            };
            if stop.is_cancelled() {
                return;
            }
            self.health.send_if_modified(|health| {
                let was_up = *health == ListenerHealth::Up;
                if was_up {
                    *health = ListenerHealth::Down {
                        since: Instant::now(),
                    };
                }
                was_up
            });
            match &outcome {
                SessionEnd::Silent if !warned_silent => {
                    warned_silent = true;
                    tracing::warn!(
                        "LISTEN connected but this node's own notifications never arrived (a transaction-mode \
                         pooler such as PgBouncer cannot carry LISTEN); running on polling. Point the listener \
                         at PostgreSQL directly (--listen-url / OBAN_LISTEN_URL, Config::listen_options) for \
                         instant wake-ups."
                    );
                }
                SessionEnd::Silent => {}
                SessionEnd::Lost { error, worked } => {
                    // A connection that worked earns a quick reconnect; repeated failures back off.
                    if *worked {
                        failures = 0;
                    }
                    tracing::warn!(%error, "notification listener lost its connection; reconnecting");
                }
            }
            failures += 1;
            let delay = if matches!(outcome, SessionEnd::Silent) {
                self.heartbeat * SILENT_RETRY_HEARTBEATS
            } else {
                reconnect_delay(
                    failures.min(8),
                    Duration::from_millis(100),
                    Duration::from_secs(10),
                    &mut rand::rng(),
                )
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection's life: LISTEN, then deliver until it goes quiet or fails.
    async fn session(&self, channels: &[String], stop: &CancellationToken) -> SessionEnd {
        let mut listener = match PgListener::connect_with(&self.listen_pool).await {
            Ok(listener) => listener,
            Err(error) => return SessionEnd::lost(error.into(), false),
        };
        match self.probe(&mut listener, stop).await {
            Ok(true) => {}
            Ok(false) => return SessionEnd::Silent,
            Err(error) => return SessionEnd::lost(error, false),
        }
        if let Err(error) = listener
            .listen_all(channels.iter().map(String::as_str))
            .await
        {
            return SessionEnd::lost(error.into(), false);
        }
        let _ = self.reconnected.try_send(());
        let mut heard_self = false;
        let mut ping = tokio::time::interval(self.heartbeat);
        let mut deadline = Instant::now() + self.heartbeat * 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return SessionEnd::Silent,
                _ = ping.tick() => self.ping().await,
                _ = tokio::time::sleep_until(deadline) => {
                    return if heard_self {
                        SessionEnd::lost(Error::Notification(format!("no notification for {:?}", self.heartbeat * 3)), true)
                    } else {
                        SessionEnd::Silent
                    };
                }
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        deadline = Instant::now() + self.heartbeat * 3;
                        let Some(message) = self.decode(&notification) else { continue };
                        if message.channel == Channel::Sonar && message.payload["node"] == self.node.as_str() {
                            if !heard_self {
                                heard_self = true;
                                self.health.send_replace(ListenerHealth::Up);
                            }
                            continue;
                        }
                        if self.deliver.send(message).await.is_err() {
                            return SessionEnd::Silent;
                        }
                    }
                    Ok(None) => return SessionEnd::lost(Error::Notification("connection closed".into()), heard_self),
                    Err(error) => return SessionEnd::lost(error.into(), heard_self),
                },
            }
        }
    }

    /// Listens on a fresh channel of this connection's own and proves that notifications reach
    /// it: whether one notification, sent once, arrives within three heartbeats.
    ///
    /// Through a transaction-mode pooler the LISTEN stays on a server connection the pooler
    /// shares, which hands the probe's notification to whichever client it serves at that moment.
    /// So the probe first asks the connection whether it still listens (through such a pooler the
    /// question usually reaches another server connection, and the probe ends without notifying
    /// anyone), sends one notification rather than one per heartbeat, and UNLISTENs when unheard.
    async fn probe(&self, listener: &mut PgListener, stop: &CancellationToken) -> Result<bool> {
        let channel = self
            .prefix
            .channel(&format!("probe_{:x}", rand::random::<u32>()));
        listener.listen(&channel).await?;
        let heard = if self.still_listening(listener, &channel).await? {
            self.notify_self(listener, &channel, stop).await?
        } else {
            false
        };
        if heard {
            listener.unlisten(&channel).await?;
        } else {
            // Best effort: through a pooler this may reach another server connection.
            let _ = listener.unlisten(&channel).await;
            // Only the first unheard probe warns; this line shows each later one.
            tracing::debug!(%channel, "LISTEN probe unheard after three heartbeats");
        }
        Ok(heard)
    }

    /// Whether the listener's connection lists `channel` among the ones it listens on.
    async fn still_listening(&self, listener: &mut PgListener, channel: &str) -> Result<bool> {
        let rows = sqlx::raw_sql(LISTENING_CHANNELS)
            .fetch_all(&mut *listener)
            .await?;
        Ok(rows
            .iter()
            .any(|row| row.try_get::<&str, _>(0).is_ok_and(|name| name == channel)))
    }

    /// Notifies `channel` once from the pool and waits up to three heartbeats to hear it.
    async fn notify_self(
        &self,
        listener: &mut PgListener,
        channel: &str,
        stop: &CancellationToken,
    ) -> Result<bool> {
        let sent = sqlx::query(NOTIFY)
            .bind(channel)
            .bind(vec![String::new()])
            .execute(&self.pool)
            .await;
        match sent {
            Ok(_) => {}
            // The LISTEN sits on a server connection the pool shares (a transaction-mode
            // pooler), which handed the notification to this very statement.
            Err(error) if is_stray_notification(&error) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        let deadline = tokio::time::sleep(self.heartbeat * 3);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = &mut deadline => return Ok(false),
                received = listener.try_recv() => match received? {
                    Some(notification) if notification.channel() == channel => return Ok(true),
                    Some(_) => {}
                    None => return Err(Error::Notification("connection closed".into())),
                },
            }
        }
    }

    /// Publishes this node's sonar ping (Elixir's shape); hearing it proves the connection.
    async fn ping(&self) {
        let ping = serde_json::json!({"node": self.node, "ping": true});
        if let Err(error) = publish(&self.pool, &self.prefix, Channel::Sonar, &[ping]).await {
            tracing::debug!(%error, "heartbeat ping not sent");
        }
    }

    fn decode(&self, notification: &sqlx::postgres::PgNotification) -> Option<Notification> {
        let channel = Channel::parse(&self.prefix, notification.channel())?;
        match decode_payload(notification.payload()) {
            Ok(payload) => Some(Notification { channel, payload }),
            Err(error) => {
                tracing::warn!(%error, channel = channel.name(), "undecodable notification ignored");
                None
            }
        }
    }
}

enum SessionEnd {
    /// Connected, but never heard its own ping (or the node is stopping).
    Silent,
    /// The connection failed, or went quiet; `worked` if it had heard its own ping.
    Lost { error: Error, worked: bool },
}

impl SessionEnd {
    fn lost(error: Error, worked: bool) -> Self {
        SessionEnd::Lost { error, worked }
    }
}

/// Whether a statement failed because a notification arrived in its middle, which sqlx
/// reports as a protocol error: the sign of a LISTEN left on a pooler's shared server connection.
fn is_stray_notification(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Protocol(message) if message.contains("NotificationResponse"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_payloads_are_plain_compact_json() {
        assert_eq!(
            encode_payload(&json!({"queue": "badges"})),
            r#"{"queue":"badges"}"#
        );
    }

    #[test]
    fn large_payloads_are_bare_base64_gzip_and_round_trip() {
        let big = json!({"checks": (0..100).map(|i| json!({"queue": format!("q{i}")})).collect::<Vec<_>>()});
        let encoded = encode_payload(&big);
        assert!(encoded.starts_with("H4sI"), "{encoded}");
        assert_eq!(decode_payload(&encoded).unwrap(), big);
    }

    /// Floats come back bit for bit, plain and compressed: the fuzzer found a subnormal
    /// (`1.96316873393223e-309`) that the default fast parser read one unit off.
    #[test]
    fn floats_round_trip_exactly() {
        let floats = [
            1.96316873393223e-309,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            0.1 + 0.2,
            -2.2250738585072014e-308,
        ];
        let plain = json!(floats);
        let compressed = json!({"floats": floats, "padding": "x".repeat(600)});
        for value in [plain, compressed] {
            let decoded = decode_payload(&encode_payload(&value)).unwrap();
            assert_eq!(decoded, value);
        }
    }

    #[test]
    fn splits_messages_to_fit_a_notification() {
        let items: Vec<String> = (0..400)
            .map(|i| format!("{i:04}-{}", noise(i, 60)))
            .collect();
        let build = |part: &[String]| json!({ "items": part });
        let (messages, too_big) = split_to_fit(items.clone(), build);
        assert!(messages.len() > 1, "{} message(s)", messages.len());
        assert!(too_big.is_empty());
        let mut seen = Vec::new();
        for message in &messages {
            assert!(encode_payload(message).len() <= MAX_PAYLOAD);
            seen.extend(message["items"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(
            seen,
            items.iter().map(|item| json!(item)).collect::<Vec<_>>()
        );

        let (messages, too_big) = split_to_fit(vec![noise(1, 20_000)], build);
        assert!(messages.is_empty());
        assert_eq!(too_big.len(), 1);
    }

    /// Text that gzip cannot shrink much, so that splitting is needed.
    fn noise(seed: usize, len: usize) -> String {
        let mut state = seed as u64;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b'a' + (state >> 59) as u8 % 26)
            })
            .collect()
    }

    #[test]
    fn decodes_elixirs_prefixed_form() {
        let big = json!({"x": "y".repeat(600)});
        let encoded = format!("Z:{}", encode_payload(&big));
        assert_eq!(decode_payload(&encoded).unwrap(), big);
    }

    #[test]
    fn every_encoded_value_decodes() {
        // Found by the `notification` fuzz target: plain `null` was read as base64.
        for value in [
            json!(null),
            json!(true),
            json!(-7),
            json!(0.5),
            json!("s"),
            json!([]),
        ] {
            assert_eq!(decode_payload(&encode_payload(&value)).unwrap(), value);
        }
        let long = json!("H4sI".repeat(200));
        assert_eq!(decode_payload(&encode_payload(&long)).unwrap(), long);
    }

    #[test]
    fn rejects_garbage_with_a_clear_error() {
        for bad in ["", "nonsense!", "Z:!!!", "H4sIAAAA", "{\"unterminated"] {
            assert!(decode_payload(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn channels_are_named_like_oban() {
        let prefix = Prefix::default();
        assert_eq!(
            Channel::parse(&prefix, "public.oban_signal"),
            Some(Channel::Signal)
        );
        assert_eq!(Channel::parse(&prefix, "other.oban_signal"), None);
    }
}
