//! `sdss node`: run one node until SIGINT or SIGTERM.

use std::io::{self, IsTerminal};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::node::discovery::Destinations;
use crate::node::queue::{self, EVENT_QUEUE};
use crate::node::{Node, NodeConfig};
use crate::output::endpoint::Endpoint;
use crate::output::{self, metrics, OutputMode};
use crate::protocol::{NodeId, DEFAULT_BROADCAST_PORT};
use crate::units::parse_duration;

/// How long a stopping node waits for its output to write what is queued.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Arguments of `sdss node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// UDP port announcements go to: the one constant every implementation shares.
    #[arg(long, env = "SDSS_BROADCAST_PORT", default_value_t = DEFAULT_BROADCAST_PORT, value_parser = parse_port)]
    pub broadcast_port: u16,

    /// Time between two announcements (e.g. 1s, 200ms).
    #[arg(long, env = "SDSS_INTERVAL", default_value = "1s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub interval: Duration,

    /// Broadcasts heard from a peer between two measurements of it.
    #[arg(long, env = "SDSS_REFRESH_EVERY", default_value_t = crate::protocol::REFRESH_EVERY, value_parser = clap::value_parser!(u32).range(1..))]
    pub refresh_every: u32,

    /// Send announcements to this IPv4 address instead of every interface's
    /// broadcast (repeatable; e.g. 127.255.255.255 for nodes on one host).
    #[arg(
        long = "destination",
        short = 'd',
        env = "SDSS_DESTINATIONS",
        value_delimiter = ','
    )]
    pub destinations: Vec<Ipv4Addr>,

    /// Announce only on this interface (repeatable). Default: every up,
    /// broadcast-capable IPv4 interface.
    #[arg(long = "interface", short = 'i', conflicts_with = "destinations")]
    pub interfaces: Vec<String>,

    /// Bound on one timestamp exchange (connect and answer).
    #[arg(long, env = "SDSS_EXCHANGE_TIMEOUT", default_value = "2s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub exchange_timeout: Duration,

    /// Most peers tracked at once; a flood of fake IDs cannot grow the table past it.
    #[arg(long, env = "SDSS_MAX_NEIGHBORS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_neighbors: u64,

    /// Fixed node ID (default: 8 random hex digits, new at every start).
    #[arg(long, env = "SDSS_NODE_ID")]
    pub id: Option<NodeId>,

    /// One JSON object per line on stdout instead of human-readable output.
    #[arg(long, env = "SDSS_JSON")]
    pub json: bool,

    /// Also report every received broadcast and every served client.
    #[arg(short, long)]
    pub verbose: bool,

    /// Period of the neighbor table in human output.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub table_every: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9498).
    /// Off by default.
    #[arg(long, env = "SDSS_METRICS", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// A UDP port peers can send to: 0 would let the kernel pick one nobody else knows.
fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err(format!(
            "port 0 is no port peers can reach (the kernel would pick one at random): \
             give one between 1 and 65535, e.g. the default {DEFAULT_BROADCAST_PORT}"
        )),
        Ok(port) => Ok(port),
        Err(_) => Err(format!(
            "{text:?} is not a port: give a number between 1 and 65535"
        )),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

impl NodeArgs {
    fn config(&self) -> NodeConfig {
        let destinations = if self.destinations.is_empty() {
            Destinations::Interfaces {
                only: self.interfaces.clone(),
            }
        } else {
            Destinations::Explicit(self.destinations.clone())
        };
        NodeConfig {
            broadcast_port: self.broadcast_port,
            interval: self.interval,
            refresh_every: self.refresh_every,
            exchange_timeout: self.exchange_timeout,
            max_neighbors: usize::try_from(self.max_neighbors).unwrap_or(usize::MAX),
            verbose: self.verbose,
            ..NodeConfig::new(self.id.clone().unwrap_or_else(NodeId::random), destinations)
        }
    }

    fn output_mode(&self) -> OutputMode {
        if self.json {
            return OutputMode::Json;
        }
        OutputMode::Human {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            verbose: self.verbose,
            table_every: self.table_every,
        }
    }
}

/// Runs a node until SIGINT or SIGTERM; exit 0 after a clean shutdown.
pub fn run(args: NodeArgs) -> ExitCode {
    // One thread runs every task: the node is I/O-bound (one datagram, one short
    // exchange at a time), its times are stamped by the kernel, and each worker
    // of a multi-thread runtime costs a stack and a malloc arena of its own (the
    // node's RSS with 50 peers: scripts/bench-node-memory.sh). Output keeps its
    // own thread, so a stalled stdout still stalls nothing else.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run_node(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            super::report_error(&error);
            ExitCode::from(2)
        }
    }
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let config = args.config();
    let max_neighbors = config.max_neighbors;
    let node = Node::bind(config).await.context("cannot start the node")?;
    let cancel = CancellationToken::new();
    let (events, received) = queue::channel(EVENT_QUEUE);
    let (peer_metrics, endpoint) = match args.metrics {
        Some(addr) => {
            let (peers, exposition) = metrics::metrics(received.tally(), max_neighbors);
            let endpoint = Endpoint::bind(addr, exposition).await?;
            (Some(peers), Some(endpoint))
        }
        None => (None, None),
    };
    spawn_signal_handler(cancel.clone())?;
    let endpoint = endpoint.map(|endpoint| tokio::spawn(endpoint.serve(cancel.clone())));
    let output = output::spawn(received, args.output_mode(), peer_metrics, cancel.clone())
        .context("cannot start the output")?;
    node.run(events, cancel).await;
    if let Some(endpoint) = endpoint {
        let _ = endpoint.await;
    }
    let finished = tokio::task::spawn_blocking(move || output.finish(OUTPUT_GRACE))
        .await
        .context("the output failed")?;
    match finished {
        // A reader that went away ended the node, as it ends any filter.
        Some(Err(error)) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to stdout")
        }
        // `None`: stdout is blocked; what is still queued is given up.
        Some(_) | None => Ok(()),
    }
}

/// Cancels `cancel` on SIGINT or SIGTERM.
fn spawn_signal_handler(cancel: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        cancel.cancel();
    });
    Ok(())
}
