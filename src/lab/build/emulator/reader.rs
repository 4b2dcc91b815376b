//! The reader thread: waits on every TAP at once, stamps each frame as it
//! leaves its sender, decides its copies' fate and queues them for the
//! scheduler; it also takes live link changes between frames.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;

use super::link::{Forwarder, Verdict};
use super::stamp::ArrivalStamps;
use super::{bump, tap, write_frame, Shared, FRAME_BUFFER, MAX_STAMP_AGE, READ_BATCH};

/// The reader: waits on every TAP at once, stamps frames as they are read.
pub(super) fn read_frames(shared: &Shared, mut forwarder: Forwarder) {
    let mut buffer = vec![0u8; FRAME_BUFFER];
    let mut captured = vec![0u8; FRAME_BUFFER];
    let mut verdicts = Vec::new();
    let mut alive = vec![true; shared.taps.len()];
    let mut stamps: Vec<ArrivalStamps> = shared
        .taps
        .iter()
        .map(|_| ArrivalStamps::default())
        .collect();
    loop {
        let watched: Vec<usize> = (0..alive.len()).filter(|port| alive[*port]).collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(&shared.wake)
            .chain(watched.iter().map(|port| &shared.taps[*port]))
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd over open descriptors.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                eprintln!("sdss lab-emulator: poll failed, forwarding stops: {error}");
                return;
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if fds[0].revents != 0 {
            let mut count = [0u8; 8];
            let _ = nix::unistd::read(&shared.wake, &mut count);
            let mut change = shared.change_lock();
            if let Some(matrix) = change.0.take() {
                forwarder.set_matrix(&matrix);
                change.1 += 1;
                shared.changed.notify_all();
            }
        }
        let ready: Vec<(usize, libc::c_short)> = watched
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| fd.revents != 0)
            .map(|(port, fd)| (*port, fd.revents))
            .collect();
        for (port, revents) in ready {
            if revents & libc::POLLIN == 0 {
                eprintln!("sdss lab-emulator: port {port} failed (poll events {revents:#x}); it is no longer read");
                bump(&shared.counters[port].errors);
                alive[port] = false;
                continue;
            }
            for _ in 0..READ_BATCH {
                match nix::unistd::read(&shared.taps[port], &mut buffer) {
                    Ok(len) => {
                        let read_at = Instant::now();
                        let frame = &buffer[..len];
                        let stamps = &mut stamps[port];
                        // The capture saw the frame before the TAP queued it, so
                        // one drain finds its stamp if the previous did not.
                        let arrival = stamps.take(frame).or_else(|| {
                            drain_capture(&shared.captures[port], &mut captured, stamps);
                            stamps.take(frame)
                        });
                        let arrival = arrival.unwrap_or_else(|| {
                            bump(&shared.counters[port].unstamped);
                            read_at
                        });
                        forward(shared, &mut forwarder, &mut verdicts, port, frame, arrival);
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => {}
                    Err(errno) => {
                        eprintln!("sdss lab-emulator: reading port {port} failed, it is no longer read: {errno}");
                        bump(&shared.counters[port].errors);
                        alive[port] = false;
                        break;
                    }
                }
            }
        }
    }
}

/// Moves every waiting kernel stamp of one port into `stamps`.
fn drain_capture(capture: &OwnedFd, buffer: &mut [u8], stamps: &mut ArrivalStamps) {
    let now = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    loop {
        match tap::receive_captured(capture, buffer) {
            Ok((len, stamp)) => {
                let at = stamp
                    .and_then(|stamp| wall.checked_sub(stamp))
                    .filter(|age| *age <= MAX_STAMP_AGE)
                    .and_then(|age| now.checked_sub(age))
                    .unwrap_or(now);
                stamps.push(len, &buffer[..len.min(buffer.len())], at);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock, or a failed capture: frames then keep their read time.
            Err(_) => return,
        }
    }
}

fn forward(
    shared: &Shared,
    forwarder: &mut Forwarder,
    verdicts: &mut Vec<Verdict>,
    from: usize,
    frame: &[u8],
    arrival: Instant,
) {
    bump(&shared.counters[from].received);
    verdicts.clear();
    if forwarder.route(from, frame, arrival, verdicts).is_err() {
        bump(&shared.counters[from].rejected);
        return;
    }
    let frame: Arc<[u8]> = Arc::from(frame);
    let mut now_due = Vec::new();
    let mut queue = shared.lock();
    let earliest = queue.next_due();
    let now = Instant::now();
    for verdict in verdicts.iter() {
        match *verdict {
            Verdict::Lost { to } => bump(&shared.counters[to].lost),
            // Already due, and nothing ahead of it on its link: waking the
            // scheduler would only make it late.
            Verdict::Deliver { to, due } if due <= now && queue.link_len(from, to) == 0 => {
                now_due.push((to, due));
            }
            Verdict::Deliver { to, due } => {
                if queue.push(from, to, due, Arc::clone(&frame)).is_err() {
                    bump(&shared.counters[to].overflowed);
                }
            }
        }
    }
    let changed = queue.next_due() != earliest;
    drop(queue);
    if changed {
        shared.earlier_due.notify_one();
    }
    for (to, due) in now_due {
        write_frame(shared, to, due, &frame);
    }
}
