//! A node's runtime: discovery, timestamp server, timestamp client, neighbor
//! table. It reports what happens as [`event::NodeEvent`]s and never prints:
//! rendering is [`crate::output`]'s job.

pub mod admission;
pub mod client;
pub mod clock;
pub mod discovery;
pub mod event;
pub mod forecast;
pub mod queue;
pub mod server;
pub mod stamps;
pub mod table;
pub mod tally;

mod tasks;
mod warnings;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{time_zone_offset_hours, Dialect, NodeId, TimestampError};

use client::ExchangeError;
use discovery::{Announcer, Destinations, DiscoveryError};
use event::{NodeEvent, RemovalCause, WarningKind};
use queue::EventSender;
use server::{ClientHint, Slots};
use table::{ExchangeOrder, ExchangeReason, NeighborTable, Sample, TableConfig};
use tally::ExchangeResult;
use warnings::{WarningKey, WarningLimiter};

/// Most exchanges with verified peers in flight at once.
const MAX_VERIFIED_EXCHANGES: usize = 64;
/// Most exchanges with unverified IDs in flight at once. A pool of their own:
/// however many fake IDs arrive, they never queue ahead of a real peer.
const MAX_UNVERIFIED_EXCHANGES: usize = 16;
/// One warning of a kind from an address per period; the rest are counted.
const WARNING_PERIOD: Duration = Duration::from_secs(10);
/// How long the last event may wait for room in a full queue.
const STOPPED_PATIENCE: Duration = Duration::from_millis(300);

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
        // Before the first exchange: stamping comes on only from deferred work.
        stamps::keep_stamping();
        let Node {
            config,
            receiver,
            listener,
            tcp_port,
        } = self;
        let table = NeighborTable::new(TableConfig {
            stagger: Some(fastrand::u64(..)),
            ..TableConfig::new(config.interval, config.refresh_every, config.max_neighbors)
        });
        let shared = Arc::new(Shared {
            config,
            tcp_port,
            table: Mutex::new(table),
            warnings: Mutex::new(WarningLimiter::new(WARNING_PERIOD)),
            events,
            learnt: watch::channel(()).0,
            started: std::time::Instant::now(),
            verified_exchanges: Arc::new(Semaphore::new(MAX_VERIFIED_EXCHANGES)),
            unverified_exchanges: Arc::new(Semaphore::new(MAX_UNVERIFIED_EXCHANGES)),
            clients: Slots::new(server::MAX_CLIENTS, server::MAX_CLIENTS_PER_ADDRESS),
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
            tokio::spawn(tasks::announce(shared.clone(), announcer, first_targets)),
            tokio::spawn(tasks::receive(shared.clone(), receiver)),
            tokio::spawn(tasks::accept(shared.clone(), listener)),
            tokio::spawn(tasks::sweep(shared.clone())),
        ];
        for task in tasks {
            let _ = task.await;
        }
        shared.tracker.close();
        shared.tracker.wait().await;
        shared
            .events
            .send_last(NodeEvent::Stopped, STOPPED_PATIENCE)
            .await;
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
    verified_exchanges: Arc<Semaphore>,
    unverified_exchanges: Arc<Semaphore>,
    clients: Arc<Slots>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Shared {
    fn emit(&self, event: NodeEvent) {
        // A full queue counts the event dropped; the node never waits for its output.
        self.events.send(event);
    }

    fn table(&self) -> MutexGuard<'_, NeighborTable> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Emits a warning of `kind` about `ip` unless one of the same kind and
    /// address was emitted recently; repeats are counted and reported with the next one.
    fn warn(
        &self,
        kind: WarningKind,
        ip: Option<IpAddr>,
        peer: Option<&NodeId>,
        message: impl FnOnce() -> String,
    ) {
        self.events.tally().warnings(kind, 1);
        let key: WarningKey = (kind, ip);
        let admitted = {
            let mut warnings = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            warnings.admit(key, std::time::Instant::now())
        };
        if let Some(suppressed) = admitted {
            self.emit(NodeEvent::Warning {
                kind,
                message: with_repeats(message(), suppressed),
                suppressed,
                peer: peer.cloned(),
                ip,
            });
        }
    }

    /// Reports the warnings suppressed in periods that have ended.
    fn report_suppressed(&self) {
        let overdue = {
            let mut warnings = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            warnings.overdue(std::time::Instant::now())
        };
        for ((kind, ip), suppressed) in overdue {
            let from = ip.map(|ip| format!(" from {ip}")).unwrap_or_default();
            self.emit(NodeEvent::Warning {
                kind,
                message: format!(
                    "{suppressed} more warnings like the last{from}: {}",
                    kind.plural()
                ),
                suppressed,
                peer: None,
                ip,
            });
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
            let pool = if order.verified {
                &shared.verified_exchanges
            } else {
                &shared.unverified_exchanges
            };
            let slot = tokio::select! {
                slot = pool.clone().acquire_owned() => slot,
                () = shared.cancel.cancelled() => return,
            };
            let Ok(_slot) = slot else {
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

    /// Turns an exchange's outcome into table state and events. Only a
    /// plausible time counts as an answer: bytes that are none are a failure.
    fn record(&self, order: ExchangeOrder, outcome: Result<client::Exchange, ExchangeError>) {
        let ip = Some(order.addr.ip());
        let exchange = match outcome {
            Ok(exchange) => exchange,
            Err(error) => {
                let failure = (error.cause(), WarningKind::ExchangeFailed);
                return self.record_failure(&order, failure, error.to_string());
            }
        };
        let dialect = match &exchange.answer {
            Ok(decoded) => decoded.dialect,
            Err(TimestampError::Float32 { .. }) => Dialect::Float32,
            Err(error) => {
                let failure = (RemovalCause::BadAnswer, WarningKind::BadTimestamp);
                return self.record_failure(&order, failure, format!("{error}; not a neighbor"));
            }
        };
        self.events.tally().exchange(ExchangeResult::Success);
        if let Err(error) = &exchange.answer {
            let message = || {
                format!(
                    "peer {} at {}: {error}; keeping its RTT only",
                    order.id, order.addr
                )
            };
            self.warn(WarningKind::Float32Timestamp, ip, Some(&order.id), message);
        }
        let sample = Sample {
            delay: exchange.delay(),
            rtt: exchange.rtt.as_secs_f64(),
            offset: exchange.offset(),
            dialect,
            first: exchange.first(),
        };
        if let Some(hours) = sample.offset.and_then(time_zone_offset_hours) {
            let message = || {
                format!(
                    "peer {} at {}: its clock is {hours:+} h off ours, a whole number of hours: \
                     it sends local time instead of UTC",
                    order.id, order.addr
                )
            };
            self.warn(WarningKind::TimeZone, ip, Some(&order.id), message);
        }
        if let Some(report) = self.table().exchange_succeeded(&order.id, sample) {
            self.emit(NodeEvent::Neighbor(report));
        }
    }

    /// A failed exchange: a `removed` event with `cause` when the peer was a
    /// neighbor until now, else a warning of `kind`.
    fn record_failure(
        &self,
        order: &ExchangeOrder,
        (cause, kind): (RemovalCause, WarningKind),
        error: String,
    ) {
        self.events.tally().exchange(ExchangeResult::Failed(cause));
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
                    cause,
                    reason: format!("{why} {error}"),
                })
            }
            None => self.warn(kind, Some(order.addr.ip()), Some(&order.id), || {
                format!("peer {} at {}: {error}", order.id, order.addr)
            }),
        }
    }
}

/// A uniformly random duration in `[0, span)`.
pub(super) fn random_fraction_of(span: Duration) -> Duration {
    span.mul_f64(fastrand::f64())
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
