//! Raw `setsockopt` calls: TCP_MD5SIG (RFC 2385) and IP_MINTTL /
//! IPV6_MINHOPCOUNT (RFC 5082 GTSM). The only unsafe code of the crate.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Linux `TCP_MD5SIG_MAXKEYLEN`.
const MD5_MAX_KEY: usize = 80;

/// Linux `struct tcp_md5sig` (include/uapi/linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MD5_MAX_KEY],
}

fn storage_of(peer: IpAddr) -> libc::sockaddr_storage {
    let sa = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = (sa.len() as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: `sa.as_ptr()` points to `sa.len()` initialised bytes, `st` has
    // room for `len` bytes, and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    st
}

fn setsockopt<T>(fd: BorrowedFd<'_>, level: i32, name: i32, val: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `fd` is a valid open socket for the borrow's lifetime; `val`
    // points to `len` readable bytes of a `#[repr(C)]`/integer value the
    // kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets (or with `None`, deletes) the RFC 2385 TCP MD5 key for `peer` on a
/// socket: on a listener, accepted connections from `peer` inherit it.
pub fn set_md5_key(fd: BorrowedFd<'_>, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("MD5 password longer than {MD5_MAX_KEY} bytes"),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: storage_of(peer),
        flags: 0,
        prefixlen: 0,
        keylen: u16::try_from(key.len()).map_err(io::Error::other)?,
        ifindex: 0,
        key: [0; MD5_MAX_KEY],
    };
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// RFC 5082 GTSM: drop received packets whose TTL (hop limit) is below `min`.
pub fn set_min_ttl(fd: BorrowedFd<'_>, ipv6: bool, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    if ipv6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)
    }
}
