//! A node's runtime: discovery, timestamp server, timestamp client, neighbor
//! table. It reports what happens as [`event::NodeEvent`]s and never prints:
//! rendering is [`crate::output`]'s job.

pub mod client;
pub mod clock;
pub mod discovery;
pub mod event;
pub mod server;
pub mod table;

mod warnings;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{
    time_zone_offset_hours, Announcement, Dialect, NodeId, TimestampError, MAX_DATAGRAM_LEN,
};

use client::ExchangeError;
use discovery::{Announcer, Destinations, DiscoveryError, Target};
use event::NodeEvent;
use server::ClientHint;
use table::{ExchangeOrder, ExchangeReason, Heard, NeighborTable, Sample, TableConfig};
use warnings::WarningLimiter;

/// Where a node's events go.
pub type EventSender = mpsc::UnboundedSender<NodeEvent>;

/// Most exchanges in flight at once: a flood of new IDs costs bounded sockets.
const MAX_CONCURRENT_EXCHANGES: usize = 64;
/// Most clients served at once; more are dropped on accept.
const MAX_CONCURRENT_CLIENTS: usize = 256;

/// Everything a node can be told; the command line fills it.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's ID.
    pub id: NodeId,
    /// UDP port of announcements.
    pub broadcast_port: u16,
    /// Time between announcements.
    pub interval: Duration,
    /// Broadcasts from a peer between two exchanges.
    pub refresh_every: u32,
    /// Where announcements go.
    pub destinations: Destinations,
    /// Bound on each exchange (connect + answer).
    pub exchange_timeout: Duration,
    /// Most peers tracked.
    pub max_neighbors: usize,
    /// Address of the timestamp server (its port is always chosen by the OS).
    pub listen_ip: IpAddr,
    /// Report every heard broadcast and served client.
    pub verbose: bool,
}

impl NodeConfig {
    /// Defaults of the assignment, for `id`, announcing to `destinations`.
    pub fn new(id: NodeId, destinations: Destinations) -> Self {
        NodeConfig {
            id,
            broadcast_port: crate::protocol::DEFAULT_BROADCAST_PORT,
            interval: crate::protocol::ANNOUNCE_INTERVAL,
            refresh_every: crate::protocol::REFRESH_EVERY,
            destinations,
            exchange_timeout: Duration::from_secs(2),
            max_neighbors: 4096,
            listen_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            verbose: false,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The discovery sockets.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The timestamp server's socket.
    #[error("cannot open the timestamp server on {ip}")]
    Listen {
        /// The address asked for.
        ip: IpAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A node with its sockets bound, ready to run.
pub struct Node {
    config: NodeConfig,
    receiver: UdpSocket,
    listener: TcpListener,
    tcp_port: u16,
}

impl Node {
    /// Binds the timestamp server (port 0) and the broadcast receiver.
    pub async fn bind(config: NodeConfig) -> Result<Node, NodeError> {
        let listen_error = |source| NodeError::Listen {
            ip: config.listen_ip,
            source,
        };
        let listener = TcpListener::bind((config.listen_ip, 0))
            .await
            .map_err(listen_error)?;
        let tcp_port = listener.local_addr().map_err(listen_error)?.port();
        let receiver = discovery::listen(config.broadcast_port)?;
        Ok(Node {
            config,
            receiver,
            listener,
            tcp_port,
        })
    }

    /// The port announced for the timestamp server.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// Runs until `cancel` fires; every task ends with it. The last event is `Stopped`.
    pub async fn run(self, events: EventSender, cancel: CancellationToken) {
        let Node {
            config,
            receiver,
            listener,
            tcp_port,
        } = self;
        let table = NeighborTable::new(TableConfig {
            refresh_every: config.refresh_every,
            silence_after: config.interval * config.refresh_every.max(1),
            capacity: config.max_neighbors,
        });
        let shared = Arc::new(Shared {
            config,
            tcp_port,
            table: Mutex::new(table),
            warnings: Mutex::new(WarningLimiter::new(Duration::from_secs(10))),
            events,
            learnt: watch::channel(()).0,
            started: std::time::Instant::now(),
            exchanges: Arc::new(Semaphore::new(MAX_CONCURRENT_EXCHANGES)),
            clients: Arc::new(Semaphore::new(MAX_CONCURRENT_CLIENTS)),
            tracker: TaskTracker::new(),
            cancel,
        });
        let announcer = Announcer::new(
            shared.config.destinations.clone(),
            shared.config.broadcast_port,
        );
        let first_targets = announcer.targets().unwrap_or_default();
        shared.emit(NodeEvent::Started {
            id: shared.config.id.clone(),
            tcp_port,
            broadcast_port: shared.config.broadcast_port,
            destinations: first_targets
                .iter()
                .map(|target| target.label.clone())
                .collect(),
            interval_ms: shared.config.interval.as_millis() as u64,
            refresh_every: shared.config.refresh_every,
        });
        let tasks = [
            tokio::spawn(announce(shared.clone(), announcer, first_targets)),
            tokio::spawn(receive(shared.clone(), receiver)),
            tokio::spawn(accept(shared.clone(), listener)),
            tokio::spawn(probe(shared.clone())),
        ];
        for task in tasks {
            let _ = task.await;
        }
        shared.tracker.close();
        shared.tracker.wait().await;
        shared.emit(NodeEvent::Stopped);
    }
}

/// State every task of a node sees.
struct Shared {
    config: NodeConfig,
    tcp_port: u16,
    table: Mutex<NeighborTable>,
    warnings: Mutex<WarningLimiter>,
    events: EventSender,
    /// Changes whenever an exchange ends: servers holding an answer for what
    /// it reveals look again.
    learnt: watch::Sender<()>,
    /// When the node started.
    started: std::time::Instant,
    exchanges: Arc<Semaphore>,
    clients: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Shared {
    fn emit(&self, event: NodeEvent) {
        // The output may be gone at shutdown; the node does not need it to run.
        let _ = self.events.send(event);
    }

    fn table(&self) -> MutexGuard<'_, NeighborTable> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Emits a warning unless one of the same key was emitted recently;
    /// repeats are counted and reported with the next one.
    fn warn(&self, key: String, event: impl FnOnce() -> NodeEvent) {
        let suppressed = {
            let mut warnings = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            warnings.admit(key, std::time::Instant::now())
        };
        if let Some(suppressed) = suppressed {
            let mut event = event();
            if let NodeEvent::Warning { message, .. } = &mut event {
                *message = with_repeats(std::mem::take(message), suppressed);
            }
            self.emit(event);
        }
    }

    /// What is known of the dialect a client at `ip` reads. In the node's first
    /// interval, an address not heard yet is worth waiting for: the peers that
    /// heard our first announcement connect at once, before their next one
    /// tells us who they are.
    fn client_hint(&self, ip: IpAddr) -> ClientHint {
        let startup = self.started + self.config.interval + server::HOLD;
        let unheard_until = Some(startup).filter(|until| std::time::Instant::now() < *until);
        self.table().client_hint(ip, server::HOLD, unheard_until)
    }

    /// Starts an exchange the table ordered, in its own task.
    ///
    /// A refresh first waits a random part of one interval: every node that
    /// heard the same broadcast counts it, so without the pause all of them
    /// connect to its sender in the same millisecond, and the answers queue
    /// behind each other and inflate the delays they measure.
    fn start_exchange(self: &Arc<Self>, order: ExchangeOrder) {
        let shared = self.clone();
        let pause = match order.reason {
            ExchangeReason::Refresh => random_fraction_of(self.config.interval),
            ExchangeReason::New | ExchangeReason::Probe => Duration::ZERO,
        };
        self.tracker.spawn(async move {
            if !pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shared.cancel.cancelled() => return,
                }
            }
            let Ok(_slot) = shared.exchanges.clone().acquire_owned().await else {
                return;
            };
            let outcome = tokio::select! {
                outcome = client::exchange(order.addr, order.known, shared.config.exchange_timeout) => outcome,
                () = shared.cancel.cancelled() => return,
            };
            shared.record(order, outcome);
            shared.learnt.send_replace(());
        });
    }

    /// Turns an exchange's outcome into table state and events.
    fn record(&self, order: ExchangeOrder, outcome: Result<client::Exchange, ExchangeError>) {
        let exchange = match outcome {
            Ok(exchange) => exchange,
            Err(error) => return self.record_failure(&order, &error),
        };
        let dialect = match &exchange.answer {
            Ok(decoded) => decoded.dialect,
            Err(TimestampError::Float32 { .. }) => Dialect::Float32,
            Err(_) => exchange.spoke.unwrap_or(Dialect::BinaryBe),
        };
        if let Err(error) = &exchange.answer {
            let kind = match error {
                TimestampError::Float32 { .. } => "float32_timestamp",
                _ => "bad_timestamp",
            };
            self.warn(format!("{kind}/{}", order.id), || {
                NodeEvent::warning(
                    kind,
                    format!(
                        "peer {} at {}: {error}; keeping its RTT only",
                        order.id, order.addr
                    ),
                    Some(order.id.clone()),
                    Some(order.addr.ip()),
                )
            });
        }
        let sample = Sample {
            delay: exchange.delay(),
            rtt: exchange.rtt.as_secs_f64(),
            offset: exchange.offset(),
            dialect,
            first: exchange.first(),
        };
        if let Some(hours) = sample.offset.and_then(time_zone_offset_hours) {
            self.warn(format!("time_zone/{}", order.id), || {
                NodeEvent::warning(
                    "time_zone",
                    format!(
                        "peer {} at {}: its clock is {hours:+} h off ours, a whole number of hours: \
                         it sends local time instead of UTC",
                        order.id, order.addr
                    ),
                    Some(order.id.clone()),
                    Some(order.addr.ip()),
                )
            });
        }
        if let Some(report) = self.table().exchange_succeeded(&order.id, sample) {
            self.emit(NodeEvent::Neighbor(report));
        }
    }

    fn record_failure(&self, order: &ExchangeOrder, error: &ExchangeError) {
        let departure = self.table().exchange_failed(&order.id);
        match departure {
            Some(departure) => {
                let why = match order.reason {
                    ExchangeReason::Probe => "silent, then",
                    ExchangeReason::New | ExchangeReason::Refresh => "refresh failed:",
                };
                self.emit(NodeEvent::Removed {
                    id: departure.id,
                    ip: departure.ip,
                    cause: error.cause().to_owned(),
                    reason: format!("{why} {error}"),
                })
            }
            None => self.warn(format!("exchange/{}", order.id), || {
                NodeEvent::warning(
                    "exchange_failed",
                    format!("peer {} at {}: {error}", order.id, order.addr),
                    Some(order.id.clone()),
                    Some(order.addr.ip()),
                )
            }),
        }
    }
}

/// A uniformly random duration in `[0, span)`.
fn random_fraction_of(span: Duration) -> Duration {
    let (random, _) = uuid::Uuid::new_v4().as_u64_pair();
    span.mul_f64(random as f64 / (u64::MAX as f64 + 1.0))
}

/// Announces this node every interval, the first time at once.
async fn announce(shared: Arc<Shared>, mut announcer: Announcer, first_targets: Vec<Target>) {
    let datagram = Announcement {
        id: shared.config.id.clone(),
        port: shared.tcp_port,
    }
    .encode();
    let mut ticks = tokio::time::interval(shared.config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut targets = Some(first_targets);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shared.cancel.cancelled() => return,
        }
        let targets = match targets.take().map_or_else(|| announcer.targets(), Ok) {
            Ok(targets) => targets,
            Err(error) => {
                shared.warn("interfaces".into(), || {
                    NodeEvent::warning("send_failed", error_chain(&error), None, None)
                });
                continue;
            }
        };
        if targets.is_empty() {
            shared.warn("no_destination".into(), || {
                NodeEvent::warning(
                    "no_destination",
                    "no up, broadcast-capable IPv4 interface to announce on; give --destination"
                        .into(),
                    None,
                    None,
                )
            });
        }
        for target in &targets {
            if let Err(error) = announcer.send(target, &datagram).await {
                let message = format!("announcing to {}: {}", target.label, error_chain(&error));
                shared.warn(format!("send/{}", target.label), || {
                    NodeEvent::warning("send_failed", message, None, None)
                });
            }
        }
    }
}

/// Hears broadcasts and feeds the table; starts exchanges it orders.
async fn receive(shared: Arc<Shared>, socket: UdpSocket) {
    // One byte more than the limit, so an oversized datagram shows as such.
    let mut buffer = vec![0u8; MAX_DATAGRAM_LEN + 1];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = shared.cancel.cancelled() => return,
        };
        let (len, source) = match received {
            Ok(received) => received,
            Err(error) => {
                shared.warn("recv".into(), || {
                    NodeEvent::warning("receive_failed", error.to_string(), None, None)
                });
                continue;
            }
        };
        let announcement = match Announcement::decode(&buffer[..len]) {
            Ok(announcement) => announcement,
            Err(error) => {
                let key = format!("malformed/{}/{}", error.kind(), source.ip());
                shared.warn(key, || {
                    NodeEvent::warning(
                        "malformed_datagram",
                        format!("ignored a datagram from {source}: {error}"),
                        None,
                        Some(source.ip()),
                    )
                });
                continue;
            }
        };
        if announcement.id == shared.config.id {
            continue;
        }
        if shared.config.verbose {
            shared.emit(NodeEvent::Heard {
                id: announcement.id.clone(),
                ip: source.ip(),
                port: announcement.port,
            });
        }
        let server = SocketAddr::new(source.ip(), announcement.port);
        let heard = shared
            .table()
            .heard(&announcement.id, server, std::time::Instant::now());
        match heard {
            Heard::New(order) => {
                shared.emit(NodeEvent::Discovered {
                    id: order.id.clone(),
                    ip: server.ip(),
                    port: server.port(),
                });
                shared.start_exchange(order);
            }
            Heard::Known(Some(order)) => shared.start_exchange(order),
            Heard::Known(None) => {}
            Heard::TableFull => shared.warn("table_full".into(), || {
                NodeEvent::warning(
                    "table_full",
                    format!(
                        "neighbor table full ({} peers): ignored new peer {}",
                        shared.config.max_neighbors, announcement.id
                    ),
                    Some(announcement.id.clone()),
                    Some(source.ip()),
                )
            }),
        }
    }
}

/// Accepts timestamp clients and serves each in its own task.
async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                shared.warn("accept".into(), || {
                    NodeEvent::warning("accept_failed", error.to_string(), None, None)
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = shared.clients.clone().try_acquire_owned() else {
            continue; // Too many clients at once: dropping this one closes it.
        };
        let shared_for_client = shared.clone();
        shared.tracker.spawn(async move {
            let _slot = slot;
            let client = shared_for_client.clone();
            let hint = move || client.client_hint(peer.ip());
            let learnt = shared_for_client.learnt.subscribe();
            let served = tokio::select! {
                served = server::serve(stream, peer, hint, learnt) => served,
                () = shared_for_client.cancel.cancelled() => return,
            };
            if let Some(dialect) = served.client_dialect {
                shared_for_client.table().learn_client(
                    peer.ip(),
                    dialect,
                    served.client_spoke_first,
                );
            }
            if shared_for_client.config.verbose {
                shared_for_client.emit(NodeEvent::Served {
                    peer: served.peer,
                    dialect: served.answered,
                    client_dialect: served.client_dialect,
                });
            }
        });
    }
}

/// Probes peers that went silent, so a dead node leaves the table in bounded time.
async fn probe(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval_at(
        Instant::now() + shared.config.interval,
        shared.config.interval,
    );
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shared.cancel.cancelled() => return,
        }
        let orders = shared.table().probe_silent(std::time::Instant::now());
        for order in orders {
            shared.start_exchange(order);
        }
    }
}

fn with_repeats(message: String, suppressed: u64) -> String {
    if suppressed == 0 {
        message
    } else {
        format!("{message} (and {suppressed} more like it)")
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_pauses_are_spread_over_the_whole_interval() {
        let interval = Duration::from_millis(250);
        let pauses: Vec<Duration> = (0..2000).map(|_| random_fraction_of(interval)).collect();
        assert!(pauses.iter().all(|pause| *pause < interval));
        // Each quarter of the interval gets about a quarter of the pauses.
        for quarter in 0..4u32 {
            let (low, high) = (interval * quarter / 4, interval * (quarter + 1) / 4);
            let count = pauses.iter().filter(|p| **p >= low && **p < high).count();
            assert!(
                (350..650).contains(&count),
                "quarter {quarter}: {count} of 2000"
            );
        }
    }
}
