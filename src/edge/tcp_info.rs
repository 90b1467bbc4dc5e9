//! The kernel's own measurements of a client connection (`TCP_INFO`): smoothed and minimum
//! round-trip time and the segment size. Linux only; elsewhere nothing is measured.

use crate::policy::wire::WireSignals;

/// Reads `TCP_INFO` of the socket `fd`. `None` when the kernel does not say (or not Linux).
#[cfg(target_os = "linux")]
pub fn read(fd: std::os::fd::RawFd) -> Option<WireSignals> {
    // SAFETY: `info` is a plain C struct the kernel fills up to `len` bytes; `fd` is a socket the
    // caller owns for the duration of the call (the connection's own stream).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_rttvar) {
        return None;
    }
    let min_rtt = if (len as usize) >= std::mem::offset_of!(libc::tcp_info, tcpi_min_rtt) + 4
        && info.tcpi_min_rtt != u32::MAX
    {
        Some(f64::from(info.tcpi_min_rtt) / 1000.0)
    } else {
        None
    };
    Some(WireSignals {
        rtt_ms: f64::from(info.tcpi_rtt) / 1000.0,
        min_rtt_ms: min_rtt.filter(|m| *m > 0.0),
        mss: Some(info.tcpi_snd_mss),
    })
}

/// Not Linux: nothing is measured.
#[cfg(not(target_os = "linux"))]
pub fn read(_fd: i32) -> Option<WireSignals> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    #[test]
    fn a_loopback_connection_has_a_tiny_rtt_and_a_large_mss() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        use std::io::{Read, Write};
        (&client).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        (&server).read_exact(&mut buf).unwrap();
        let sig = super::read(server.as_raw_fd()).unwrap();
        assert!(sig.rtt_ms < 50.0, "{sig:?}");
        assert!(sig.mss.unwrap() > 1400, "{sig:?}");
    }
}
