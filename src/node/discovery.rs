//! The UDP side: one socket that hears every broadcast on the port, and the
//! senders that announce this node on every interface (or to explicit addresses).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio::net::UdpSocket;

/// Where announcements go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// The limited broadcast out of every up, broadcast-capable IPv4 interface
    /// (optionally only those named): heard both by peers bound to
    /// `0.0.0.0` and by peers bound to `255.255.255.255`, one datagram per link.
    Interfaces {
        /// Only these interfaces; all when empty.
        only: Vec<String>,
    },
    /// Exactly these addresses, e.g. `127.255.255.255` on loopback.
    Explicit(Vec<Ipv4Addr>),
}

/// Why the discovery sockets could not be set up.
#[derive(Debug, Error)]
pub enum DiscoveryError {
    /// Binding the receiving socket failed.
    #[error("cannot listen for broadcasts on UDP port {port}")]
    Listen {
        /// The broadcast port.
        port: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Creating a sending socket failed.
    #[error("cannot open a broadcast socket{}", interface.as_ref().map(|i| format!(" on {i}")).unwrap_or_default())]
    Send {
        /// The interface, for per-interface sockets.
        interface: Option<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Listing interfaces failed.
    #[error("cannot list network interfaces")]
    Interfaces(#[source] io::Error),
}

/// The receiving socket: bound to `0.0.0.0:port` so it hears limited and
/// directed broadcasts alike, shared with other nodes on the host (`SO_REUSEPORT`).
pub fn listen(port: u16) -> Result<UdpSocket, DiscoveryError> {
    let setup = || -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_broadcast(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        UdpSocket::from_std(socket.into())
    };
    setup().map_err(|source| DiscoveryError::Listen { port, source })
}

fn broadcast_socket(interface: Option<(&str, Ipv4Addr)>) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    if let Some((name, address)) = interface {
        socket.bind_device(Some(name.as_bytes()))?;
        socket.bind(&SocketAddr::from((address, 0)).into())?;
    }
    UdpSocket::from_std(socket.into())
}

/// One place announcements are sent to.
#[derive(Debug)]
pub struct Target {
    /// How the destination is shown: `eth0 -> 255.255.255.255:35498` or `127.255.255.255:35498`.
    pub label: String,
    /// The datagram's destination.
    pub addr: SocketAddrV4,
    socket_key: Option<(String, Ipv4Addr)>,
}

/// The sending side: resolves destinations (interfaces come and go) and keeps
/// one socket per interface.
#[derive(Debug)]
pub struct Announcer {
    destinations: Destinations,
    port: u16,
    plain: Option<UdpSocket>,
    per_interface: HashMap<(String, Ipv4Addr), UdpSocket>,
}

impl Announcer {
    /// Prepares to announce to `destinations` on UDP `port`.
    pub fn new(destinations: Destinations, port: u16) -> Self {
        Announcer {
            destinations,
            port,
            plain: None,
            per_interface: HashMap::new(),
        }
    }

    /// Where the next announcement goes. Re-read every time, so an interface
    /// that comes up later is covered.
    pub fn targets(&self) -> Result<Vec<Target>, DiscoveryError> {
        match &self.destinations {
            Destinations::Explicit(addresses) => Ok(addresses
                .iter()
                .map(|ip| {
                    let addr = SocketAddrV4::new(*ip, self.port);
                    Target {
                        label: addr.to_string(),
                        addr,
                        socket_key: None,
                    }
                })
                .collect()),
            Destinations::Interfaces { only } => {
                let interfaces = if_addrs::get_if_addrs().map_err(DiscoveryError::Interfaces)?;
                let addr = SocketAddrV4::new(Ipv4Addr::BROADCAST, self.port);
                let mut targets: Vec<Target> = interfaces
                    .into_iter()
                    .filter(|interface| only.is_empty() || only.contains(&interface.name))
                    .filter(|interface| interface.is_oper_up() && !interface.is_loopback())
                    .filter_map(|interface| match interface.addr {
                        if_addrs::IfAddr::V4(v4) if v4.broadcast.is_some() => Some(Target {
                            label: format!("{} -> {addr}", interface.name),
                            addr,
                            socket_key: Some((interface.name, v4.ip)),
                        }),
                        _ => None,
                    })
                    .collect();
                targets.sort_by(|a, b| a.label.cmp(&b.label));
                targets.dedup_by(|a, b| a.label == b.label);
                Ok(targets)
            }
        }
    }

    /// Sends `datagram` to `target`, opening its socket on first use.
    pub async fn send(&mut self, target: &Target, datagram: &[u8]) -> Result<(), DiscoveryError> {
        let socket =
            match &target.socket_key {
                None => match &mut self.plain {
                    Some(socket) => socket,
                    slot => slot.insert(broadcast_socket(None).map_err(|source| {
                        DiscoveryError::Send {
                            interface: None,
                            source,
                        }
                    })?),
                },
                Some(key) => {
                    if !self.per_interface.contains_key(key) {
                        let socket = broadcast_socket(Some((&key.0, key.1))).map_err(|source| {
                            DiscoveryError::Send {
                                interface: Some(key.0.clone()),
                                source,
                            }
                        })?;
                        // Forget sockets of addresses that are gone.
                        self.per_interface.retain(|(name, _), _| name != &key.0);
                        self.per_interface.insert(key.clone(), socket);
                    }
                    &self.per_interface[key]
                }
            };
        socket
            .send_to(datagram, SocketAddr::V4(target.addr))
            .await
            .map(drop)
            .map_err(|source| DiscoveryError::Send {
                interface: target.socket_key.as_ref().map(|(name, _)| name.clone()),
                source,
            })
    }
}
