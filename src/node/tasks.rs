//! The node's four long-lived tasks: announce, receive, accept, sweep. Each
//! runs until the node's cancellation token fires; what they learn goes
//! through [`Shared`] into the table and the event queue.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::time::{Instant, MissedTickBehavior};

use crate::protocol::{Announcement, MAX_DATAGRAM_LEN};

use super::admission::Refusal;
use super::discovery::{Announcer, Target};
use super::event::{NodeEvent, RemovalCause, WarningKind};
use super::server;
use super::table::{Heard, Ignored};
use super::tally::DatagramKind;
use super::{error_chain, random_fraction_of, Shared};

/// Announces this node every interval, the first time at once and the second
/// after a random part of an interval: nodes started together (a lab's, after
/// a power cut) would otherwise announce in the same millisecond every
/// interval, forever, and their switch carry n(n-1) copies in one burst.
pub(super) async fn announce(
    shared: Arc<Shared>,
    mut announcer: Announcer,
    first_targets: Vec<Target>,
) {
    let datagram = Announcement {
        id: shared.config.id.clone(),
        port: shared.tcp_port,
    }
    .encode();
    let mut ticks = tokio::time::interval(shared.config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut targets = Some(first_targets);
    let mut phased = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shared.cancel.cancelled() => return,
        }
        if !std::mem::replace(&mut phased, true) {
            ticks.reset_at(Instant::now() + random_fraction_of(shared.config.interval));
        }
        let targets = match targets.take().map_or_else(|| announcer.targets(), Ok) {
            Ok(targets) => targets,
            Err(error) => {
                shared.warn(WarningKind::SendFailed, None, None, || error_chain(&error));
                continue;
            }
        };
        if targets.is_empty() {
            shared.warn(WarningKind::NoDestination, None, None, || {
                "no up, broadcast-capable IPv4 interface to announce on; give --destination".into()
            });
        }
        for target in &targets {
            let sent = announcer.send(target, &datagram).await;
            if sent.is_ok() {
                shared.events.tally().datagram(DatagramKind::Sent);
            }
            if let Err(error) = sent {
                let ip = Some(IpAddr::V4(*target.addr.ip()));
                shared.warn(WarningKind::SendFailed, ip, None, || {
                    format!("announcing to {}: {}", target.label, error_chain(&error))
                });
            }
        }
    }
}

/// Hears broadcasts and feeds the table; starts exchanges it orders.
pub(super) async fn receive(shared: Arc<Shared>, socket: UdpSocket) {
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
                shared.warn(WarningKind::ReceiveFailed, None, None, || error.to_string());
                continue;
            }
        };
        let ip = Some(source.ip());
        let announcement = match Announcement::decode(&buffer[..len]) {
            Ok(announcement) => announcement,
            Err(error) => {
                shared.events.tally().datagram(DatagramKind::Malformed);
                shared.warn(WarningKind::MalformedDatagram, ip, None, || {
                    format!("ignored a datagram from {source}: {error}")
                });
                continue;
            }
        };
        if announcement.id == shared.config.id {
            shared.events.tally().datagram(DatagramKind::Own);
            continue;
        }
        shared.events.tally().datagram(DatagramKind::Heard);
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
        let id = &announcement.id;
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
            Heard::Refused(Ignored::Admission(Refusal::RateLimited)) => {
                shared.warn(WarningKind::AdmissionLimited, ip, Some(id), || {
                    format!(
                        "ignored new peer {id} from {}: its address announces new IDs \
                         faster than one per interval",
                        source.ip()
                    )
                })
            }
            Heard::Refused(Ignored::Admission(Refusal::AddressFull)) => {
                shared.warn(WarningKind::AddressFull, ip, Some(id), || {
                    format!(
                        "ignored new peer {id} from {}: its address holds {} peers already",
                        source.ip(),
                        shared.table().ids_at(source.ip())
                    )
                })
            }
            Heard::Refused(Ignored::TableFull) => {
                shared.warn(WarningKind::TableFull, ip, Some(id), || {
                    format!(
                        "neighbor table full ({} peers): ignored new peer {id}",
                        shared.config.max_neighbors
                    )
                })
            }
            Heard::Refused(Ignored::IdConflict) => {
                shared.warn(WarningKind::IdConflict, ip, Some(id), || {
                    format!(
                        "ignored {id} announced from {}: a neighbor of that ID answers elsewhere",
                        source.ip()
                    )
                })
            }
        }
    }
}

/// Accepts timestamp clients. Each with a slot is served in its own task;
/// the others are answered at once (see [`server`]).
pub(super) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                shared.warn(WarningKind::AcceptFailed, None, None, || error.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = shared.clients.take(peer.ip()) else {
            server::answer_at_once(stream, shared.client_hint(peer.ip()));
            continue;
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

/// Sweeps the table once per interval: probes peers that went silent, so a
/// dead node leaves the table in bounded time, and forgets the expired.
pub(super) async fn sweep(shared: Arc<Shared>) {
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
        let sweep = shared.table().sweep(std::time::Instant::now());
        for departure in sweep.departures {
            shared.emit(NodeEvent::Removed {
                id: departure.id,
                ip: departure.ip,
                cause: RemovalCause::Silent,
                reason: format!(
                    "silent for {:?}: it stopped announcing itself",
                    shared.config.interval * shared.config.refresh_every * 2
                ),
            });
        }
        for order in sweep.probes {
            shared.start_exchange(order);
        }
        shared.report_suppressed();
    }
}
