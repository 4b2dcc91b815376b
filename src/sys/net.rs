//! Socket options and device requests that take C structures no crate here
//! builds safely: `TCP_INFO`, the `ifreq` ioctls (TUN, interface flags,
//! ethtool) and a link-layer address. Each passes the kernel one live,
//! fully initialized structure of the size the request expects.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The socket's `TCP_INFO`. Sound: `info` is writable for `len` bytes, and
/// the kernel writes at most `len` (an older kernel fewer: the rest stays
/// zero, a value for its plain integers).
pub fn tcp_info(stream: impl AsFd) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers, for which all zeroes is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: as above.
    let result = unsafe {
        libc::getsockopt(
            stream.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// Makes `tun` (an open `/dev/net/tun`) the device `ifname` with `flags`
/// (TUNSETIFF). Sound: the request reads and writes one `ifreq`, live
/// across the call.
pub fn tun_set_iff(tun: impl AsFd, ifname: &str, flags: libc::c_short) -> io::Result<()> {
    let mut request = ifreq(ifname);
    request.ifr_ifru.ifru_flags = flags;
    // SAFETY: as above.
    let done = unsafe { libc::ioctl(tun.as_fd().as_raw_fd(), libc::TUNSETIFF, &mut request) };
    ok_if_not_negative(done)
}

/// The flags of interface `ifname` (SIOCGIFFLAGS), through any socket of
/// its namespace. Sound: the request fills the flags of one live `ifreq`,
/// and only they are read back.
pub fn interface_flags(socket: impl AsFd, ifname: &str) -> io::Result<libc::c_short> {
    let mut request = ifreq(ifname);
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: as above.
    ok_if_not_negative(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) })?;
    // SAFETY: the union's flags, zeroed by `ifreq` and set by the kernel.
    Ok(unsafe { request.ifr_ifru.ifru_flags })
}

/// Sets the flags of interface `ifname` (SIOCSIFFLAGS). Sound: the request
/// reads one live `ifreq`.
pub fn set_interface_flags(
    socket: impl AsFd,
    ifname: &str,
    flags: libc::c_short,
) -> io::Result<()> {
    let mut request = ifreq(ifname);
    request.ifr_ifru.ifru_flags = flags;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: as above.
    ok_if_not_negative(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut request) })
}

/// Sends interface `ifname` the ethtool command `cmd` with `data` (an
/// `ethtool_value`, e.g. `ETHTOOL_STXCSUM`), through any socket of its
/// namespace. Sound: `ifru_data` points at the `ethtool_value`, live for the
/// call, which is what SIOCETHTOOL reads and writes.
pub fn ethtool_set(socket: impl AsFd, ifname: &str, cmd: u32, data: u32) -> io::Result<()> {
    /// `struct ethtool_value` (linux/ethtool.h).
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue { cmd, data };
    let mut request = ifreq(ifname);
    request.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: as above.
    ok_if_not_negative(unsafe { libc::ioctl(fd, libc::SIOCETHTOOL as _, &mut request) })
}

/// Binds the packet socket `socket` to interface `ifindex` for frames of
/// `protocol` (an `ETH_P_*`, in host order). Sound: the address is a valid
/// `sockaddr_ll` of the length given (neither nix nor socket2 makes a
/// link-layer address without unsafe code).
pub fn bind_packet(socket: impl AsFd, protocol: u16, ifindex: u32) -> io::Result<()> {
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: libc::c_int::try_from(ifindex).map_err(io::Error::other)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: as above.
    let bound = unsafe {
        libc::bind(
            socket.as_fd().as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    ok_if_not_negative(bound)
}

/// An `ifreq` naming `ifname`: at most `IFNAMSIZ - 1` bytes of it, so the
/// name stays NUL-terminated (specs are validated to 15 bytes).
fn ifreq(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data for which all zeroes is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request
        .ifr_name
        .iter_mut()
        .take(libc::IFNAMSIZ - 1)
        .zip(ifname.bytes())
    {
        *slot = byte as libc::c_char;
    }
    request
}

/// The OS error of a call that returned a negative number.
fn ok_if_not_negative(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
