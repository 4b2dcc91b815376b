//! Batched rtnetlink: many requests in one `sendmsg`, their acknowledgements
//! read back together, on a plain blocking socket in the calling thread's
//! namespace.
//!
//! Why not one awaited request at a time: a lab of n nodes needs about n²
//! requests (its static neighbours), and a round trip through an async
//! connection each cost 20 ms a link at 100 nodes. The kernel handles the
//! messages of a batch in order, synchronously, inside `sendmsg`: a request
//! may depend on those before it, and every acknowledgement is queued by the
//! time `sendmsg` returns. Messages are built with rtnetlink's builders.

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use thiserror::Error;

/// Requests per `sendmsg`: their acknowledgements must fit the receive buffer.
const CHUNK: usize = 128;

/// How long the kernel gets to answer (it answers within `sendmsg`; this bounds
/// a mistake, never a normal wait).
const ANSWER: Duration = Duration::from_secs(5);

/// A refused request or a broken socket.
#[derive(Debug, Error)]
pub enum RtnlError {
    /// The socket could not be opened, written or read.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Refused {
        /// The request, in words.
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// An answer that is not a netlink message, or no answer.
    #[error("netlink answer: {0}")]
    Answer(String),
}

/// How a request treats an object that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Fails if it exists (a link of the lab: nothing of the same name may be there).
    New,
    /// Replaces it (a neighbour entry).
    Replace,
    /// Changes an existing object (a link brought up).
    Change,
    /// Adds beside those with the same key (a VXLAN flood entry: one
    /// all-zeros entry per remote host).
    Append,
}

impl Create {
    /// The request's netlink flags.
    pub fn flags(self) -> u16 {
        NLM_F_REQUEST
            | NLM_F_ACK
            | match self {
                Create::New => NLM_F_CREATE | NLM_F_EXCL,
                Create::Replace => NLM_F_CREATE | NLM_F_REPLACE,
                Create::Change => 0,
                Create::Append => NLM_F_CREATE | NLM_F_APPEND,
            }
    }
}

/// A socket and the requests queued on it.
pub struct Rtnl {
    socket: Socket,
    next_seq: u32,
    queued: Vec<(u32, NetlinkMessage<RouteNetlinkMessage>, String)>,
    buffer: Vec<u8>,
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Rtnl, RtnlError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(RtnlError::Socket)?;
        socket.bind_auto().map_err(RtnlError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(RtnlError::Socket)?;
        // Acknowledgements without a copy of the request: more fit the buffer.
        socket.set_cap_ack(true).map_err(RtnlError::Socket)?;
        let timeout = TimeVal::new(ANSWER.as_secs() as libc::time_t, 0);
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)
            .map_err(|errno| RtnlError::Socket(errno.into()))?;
        Ok(Rtnl {
            socket,
            next_seq: 1,
            queued: Vec::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Queues a request; `what` names it in an error.
    pub fn push(&mut self, message: RouteNetlinkMessage, create: Create, what: impl Into<String>) {
        let seq = self.seq();
        self.queued
            .push((seq, request(message, create.flags(), seq), what.into()));
    }

    /// Sends every queued request, in order, and waits for each answer. All
    /// are tried; the first refusal is the error.
    pub fn flush(&mut self) -> Result<(), RtnlError> {
        let queued = std::mem::take(&mut self.queued);
        let mut first_error = None;
        for chunk in queued.chunks(CHUNK) {
            let mut bytes = Vec::with_capacity(chunk.iter().map(|(_, m, _)| m.buffer_len()).sum());
            for (_, message, _) in chunk {
                let start = bytes.len();
                bytes.resize(start + message.buffer_len(), 0);
                message.serialize(&mut bytes[start..]);
            }
            self.socket.send(&bytes, 0).map_err(RtnlError::Socket)?;
            let mut waiting: Vec<u32> = chunk.iter().map(|(seq, _, _)| *seq).collect();
            while !waiting.is_empty() {
                for answer in self.receive()? {
                    let NetlinkPayload::Error(error) = answer.payload else {
                        continue;
                    };
                    waiting.retain(|s| *s != answer.header.sequence_number);
                    if error.code.is_some() && first_error.is_none() {
                        let what = chunk
                            .iter()
                            .find(|(s, _, _)| *s == answer.header.sequence_number)
                            .map_or_else(|| "a request".to_owned(), |(_, _, w)| w.clone());
                        first_error = Some(RtnlError::Refused {
                            what,
                            source: error.to_io(),
                        });
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends one request that has a reply (a lookup) and returns the reply.
    pub fn get(
        &mut self,
        message: RouteNetlinkMessage,
        what: &str,
    ) -> Result<RouteNetlinkMessage, RtnlError> {
        self.flush()?;
        let seq = self.seq();
        let message = request(message, NLM_F_REQUEST | NLM_F_ACK, seq);
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(RtnlError::Socket)?;
        let mut reply = None;
        loop {
            for answer in self.receive()? {
                if answer.header.sequence_number != seq {
                    continue;
                }
                match answer.payload {
                    NetlinkPayload::InnerMessage(inner) => reply = Some(inner),
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(RtnlError::Refused {
                            what: what.to_owned(),
                            source: error.to_io(),
                        })
                    }
                    NetlinkPayload::Error(_) => {
                        return reply.ok_or_else(|| RtnlError::Answer(format!("{what}: no reply")))
                    }
                    _ => {}
                }
            }
        }
    }

    fn seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// One datagram's messages.
    fn receive(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, RtnlError> {
        let len = self
            .socket
            .recv(&mut &mut self.buffer[..], 0)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    RtnlError::Answer(format!("none within {} s", ANSWER.as_secs()))
                }
                _ => RtnlError::Socket(e),
            })?;
        let mut messages = Vec::new();
        let mut at = 0;
        while at + 16 <= len {
            let size = u32::from_ne_bytes([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]) as usize;
            if size < 16 || at + size > len {
                return Err(RtnlError::Answer(format!("a message of {size} bytes")));
            }
            let message =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buffer[at..at + size])
                    .map_err(|e| RtnlError::Answer(e.to_string()))?;
            messages.push(message);
            at += (size + 3) & !3;
        }
        Ok(messages)
    }
}

/// `message` framed as request `seq`.
pub fn request(
    message: RouteNetlinkMessage,
    flags: u16,
    seq: u32,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    message.finalize();
    message
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rtnetlink::{AddressMessageBuilder, LinkUnspec};

    use super::*;

    /// An address on an interface index no namespace has: always refused.
    fn refused_address(last: u8) -> RouteNetlinkMessage {
        RouteNetlinkMessage::NewAddress(
            AddressMessageBuilder::<Ipv4Addr>::new()
                .index(0x7fff_fff0)
                .address(Ipv4Addr::new(198, 18, 255, last), 32)
                .build(),
        )
    }

    #[test]
    fn a_batch_reports_its_first_refusal_by_name_and_reads_every_answer() {
        let mut rtnl = Rtnl::open().expect("a netlink socket");
        for last in 1..=3 {
            rtnl.push(
                refused_address(last),
                Create::New,
                format!("address {last}"),
            );
        }
        match rtnl.flush() {
            Err(RtnlError::Refused { what, source }) => {
                assert_eq!(what, "address 1");
                assert_eq!(source.raw_os_error(), Some(libc::ENODEV), "{source}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Every answer of the batch was read: the next reply is the lookup's.
        let lo = RouteNetlinkMessage::GetLink(LinkUnspec::new_with_index(1).build());
        match rtnl.get(lo, "looking up lo") {
            Ok(RouteNetlinkMessage::NewLink(link)) => assert_eq!(link.header.index, 1),
            other => panic!("expected lo, got {other:?}"),
        }
    }
}
