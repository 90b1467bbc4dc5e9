//! Batched datagram I/O for the UDP relay ([`super::udp`]): many datagrams per system call.
//!
//! On Linux, [`RecvBatch`] receives up to its number of slots with one `recvmmsg`; on a socket
//! with UDP GRO ([`enable_gro`], where the kernel has it) a slot may hold several datagrams of
//! one source coalesced, which are split again here. [`send`] and [`try_send`] send a run of
//! datagrams to one destination with one `sendmsg` carrying `UDP_SEGMENT` (GSO) when they have
//! one size, else with one `sendmmsg`. Elsewhere, and when [`RecvBatch::portable`] asks for it
//! (the tests), the same calls make one system call per datagram.
//!
//! Readiness is tokio's: the system calls are made inside `try_io` / `async_io`, so the sockets
//! stay ordinary tokio sockets and can still be used with their own methods.
//!
//! The reply relays of [`super::udp`] use [`relay`], which receives into a batch shared by the
//! flows of one worker thread ([`REPLY_SLOTS`] slots of [`MAX_DATAGRAM`]), so a flow holds no
//! receive buffer of its own however many flows are open.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram relayed (and the size of a slot that can hold a GRO-coalesced buffer).
pub const MAX_DATAGRAM: usize = 65_535;

/// Most slots a batch has (one system call moves at most this many datagrams).
pub const MAX_BATCH: usize = 64;

/// Slots of the per-thread batch [`relay`] receives replies into.
pub const REPLY_SLOTS: usize = 16;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Who sent it.
    pub src: SocketAddr,
    /// Its payload (the part that fitted its slot when `truncated`).
    pub data: &'a [u8],
    /// It was longer than a slot: the rest is lost (`len` says how long it was, where known).
    pub truncated: bool,
    /// Its length as sent (equal to `data.len()` unless `truncated`).
    pub len: usize,
}

/// What one slot received.
#[derive(Debug, Clone, Copy)]
struct Slot {
    src: Option<SocketAddr>,
    /// Bytes in the slot.
    filled: usize,
    /// Length of the datagram (or coalesced datagrams) as sent.
    len: usize,
    /// GRO segment size: the slot holds datagrams of this size (the last may be shorter).
    segment: usize,
}

/// Receive buffers for up to [`MAX_BATCH`] datagrams at a time.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot_size: usize,
    capacity: usize,
    got: Vec<Slot>,
    portable: bool,
    drains: bool,
    #[cfg(target_os = "linux")]
    names: Vec<libc::sockaddr_storage>,
    #[cfg(target_os = "linux")]
    control: Vec<[u64; 8]>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slot_size", &self.slot_size)
            .field("capacity", &self.capacity)
            .field("received", &self.got.len())
            .field("portable", &self.portable)
            .finish()
    }
}

impl RecvBatch {
    /// Buffers for `slots` datagrams (at most [`MAX_BATCH`], at least 1) of up to `slot_size`
    /// bytes each; longer ones are received truncated, and said to be.
    pub fn new(slots: usize, slot_size: usize) -> RecvBatch {
        let capacity = slots.clamp(1, MAX_BATCH);
        let slot_size = slot_size.max(1);
        RecvBatch {
            buf: vec![0u8; capacity * slot_size],
            slot_size,
            capacity,
            got: Vec::with_capacity(capacity),
            portable: !cfg!(target_os = "linux"),
            drains: false,
            #[cfg(target_os = "linux")]
            // SAFETY: sockaddr_storage is plain integers; all zeroes is a valid value.
            names: vec![unsafe { std::mem::zeroed() }; capacity],
            #[cfg(target_os = "linux")]
            control: vec![[0u64; 8]; capacity],
        }
    }

    /// One system call per datagram, as on systems without `recvmmsg` (for the tests).
    pub fn portable(mut self) -> RecvBatch {
        self.portable = true;
        self
    }

    /// The socket is unconnected and reports no errors (no `IP_RECVERR`), so a batch that comes
    /// back short means its queue is empty: the socket's readiness is cleared at once instead of
    /// by one more call that finds nothing. (On a connected socket a short batch may instead
    /// mean an ICMP error stopped it with datagrams still queued; there it is not assumed.)
    pub fn short_batch_drains(mut self) -> RecvBatch {
        self.drains = true;
        self
    }

    /// Waits until `socket` is readable and receives what is queued, up to the batch's slots;
    /// the number of slots filled.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        loop {
            socket.readable().await?;
            match self.try_recv(socket) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Receives what is queued now, up to the batch's slots (`WouldBlock` when nothing is).
    pub fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        if self.portable {
            return self.try_recv_portable(socket);
        }
        #[cfg(target_os = "linux")]
        {
            let drains = self.drains;
            let capacity = self.capacity;
            let mut n = 0;
            let r = socket.try_io(Interest::READABLE, || {
                n = self.recvmmsg(socket)?;
                if drains && n < capacity {
                    // Tell tokio the queue is drained (see `short_batch_drains`); the
                    // datagrams are in the batch and returned below.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => Ok(n),
                Err(e) => Err(e),
                Ok(()) => Ok(n),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.try_recv_portable(socket)
        }
    }

    /// `try_recv` one datagram per call.
    fn try_recv_portable(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for chunk in self
            .buf
            .chunks_exact_mut(self.slot_size)
            .take(self.capacity)
        {
            match socket.try_recv_from(chunk) {
                Ok((n, src)) => self.got.push(Slot {
                    src: Some(src),
                    filled: n,
                    len: n,
                    segment: 0,
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.got.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last receive, in arrival order (coalesced ones split again).
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        self.got.iter().enumerate().flat_map(move |(i, slot)| {
            let start = i * self.slot_size;
            let data = &self.buf[start..start + slot.filled];
            let truncated = slot.len > slot.filled;
            let step = if slot.segment > 0 && !truncated {
                slot.segment
            } else {
                data.len().max(1)
            };
            let src = slot.src;
            let whole = slot.len;
            Pieces {
                rest: data,
                step,
                done: false,
            }
            .filter_map(move |piece| {
                Some(Datagram {
                    src: src?,
                    data: piece,
                    truncated,
                    len: if truncated { whole } else { piece.len() },
                })
            })
        })
    }

    /// Runs of datagrams from one source, in arrival order; truncated datagrams are left out
    /// (see [`RecvBatch::truncated`]).
    pub fn runs(&self) -> impl Iterator<Item = (SocketAddr, Vec<&[u8]>)> + '_ {
        let mut it = self.iter().filter(|d| !d.truncated).peekable();
        std::iter::from_fn(move || {
            let first = it.next()?;
            let mut run = vec![first.data];
            while let Some(d) = it.next_if(|d| d.src == first.src) {
                run.push(d.data);
            }
            Some((first.src, run))
        })
    }

    /// How many datagrams of the last receive were longer than a slot.
    pub fn truncated(&self) -> usize {
        self.got.iter().filter(|s| s.len > s.filled).count()
    }
}

/// A slot's datagrams: pieces of `step` bytes (the last may be shorter; an empty slot is one
/// empty datagram).
struct Pieces<'a> {
    rest: &'a [u8],
    step: usize,
    done: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        if self.rest.len() <= self.step {
            self.done = true;
            return Some(self.rest);
        }
        let (piece, rest) = self.rest.split_at(self.step);
        self.rest = rest;
        Some(piece)
    }
}

/// Asks the kernel to coalesce datagrams arriving at `socket` (UDP GRO, Linux 5.0 and later);
/// whether it took. Only for sockets read with [`RecvBatch`] in its batched mode, which splits
/// them again.
pub fn enable_gro(socket: &UdpSocket) -> bool {
    #[cfg(target_os = "linux")]
    {
        linux::setsockopt_int(socket, libc::SOL_UDP, libc::UDP_GRO, 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Bytes of receive buffer asked for on a listener ([`grow_receive_buffer`]).
pub const LISTENER_RCVBUF: usize = 4 << 20;

/// Asks for `bytes` of receive buffer on `socket`, so a burst (or a moment the relay is not
/// scheduled) queues instead of being dropped; the size the kernel granted. Beyond
/// `net.core.rmem_max` only with CAP_NET_ADMIN (`SO_RCVBUFFORCE`, as wireguard-go does);
/// otherwise capped there. A buffer already as large is left alone.
pub fn grow_receive_buffer(socket: &UdpSocket, bytes: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        let want = i32::try_from(bytes).unwrap_or(i32::MAX);
        let now = linux::getsockopt_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(0);
        // The kernel reports twice what was set (its bookkeeping share included).
        if now / 2 < want
            && !linux::setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want)
        {
            linux::setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, want);
        }
        linux::getsockopt_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUF)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, bytes);
        0
    }
}

/// Sends `datagrams` through `socket` (to `dest`, or to the peer of a connected socket), in as
/// few system calls as the platform allows, waiting while the socket's buffer is full; the
/// bytes sent. A datagram the kernel refuses (e.g. after an ICMP error) is lost and counted out,
/// as a failed `send_to` loses it.
pub async fn send(socket: &UdpSocket, dest: Option<SocketAddr>, datagrams: &[&[u8]]) -> u64 {
    let mut at = 0;
    let mut bytes = 0u64;
    while at < datagrams.len() {
        let rest = &datagrams[at..];
        #[cfg(target_os = "linux")]
        let sent = socket
            .async_io(Interest::WRITABLE, || linux::send_some(socket, dest, rest))
            .await;
        #[cfg(not(target_os = "linux"))]
        let sent = match dest {
            Some(d) => socket.send_to(rest[0], d).await.map(|_| 1),
            None => socket.send(rest[0]).await.map(|_| 1),
        };
        match sent {
            Ok(n) => {
                bytes += rest[..n].iter().map(|d| d.len() as u64).sum::<u64>();
                at += n;
            }
            Err(_) => at += 1,
        }
    }
    bytes
}

/// [`send`] without waiting: what does not fit the socket's buffer now is dropped, as a full
/// buffer drops it; the bytes sent.
pub fn try_send(socket: &UdpSocket, dest: Option<SocketAddr>, datagrams: &[&[u8]]) -> u64 {
    let mut at = 0;
    let mut bytes = 0u64;
    while at < datagrams.len() {
        let rest = &datagrams[at..];
        #[cfg(target_os = "linux")]
        let sent = socket.try_io(Interest::WRITABLE, || linux::send_some(socket, dest, rest));
        #[cfg(not(target_os = "linux"))]
        let sent = match dest {
            Some(d) => socket.try_send_to(rest[0], d).map(|_| 1),
            None => socket.try_send(rest[0]).map(|_| 1),
        };
        match sent {
            Ok(n) => {
                bytes += rest[..n].iter().map(|d| d.len() as u64).sum::<u64>();
                at += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => at += 1,
        }
    }
    bytes
}

thread_local! {
    /// The batch [`relay`] receives into: one per worker thread, shared by its flows.
    static REPLIES: RefCell<Option<RecvBatch>> = const { RefCell::new(None) };
}

/// Moves the datagrams queued on `from` now to `dest` through `to`, without waiting (what `to`
/// cannot take now is dropped, as its full buffer would drop it): how many were received and
/// the bytes sent, or the receive error (an ICMP error on a connected `from`). `Ok((0, 0))`:
/// nothing was queued.
pub fn relay(from: &UdpSocket, to: &UdpSocket, dest: SocketAddr) -> io::Result<(usize, u64)> {
    REPLIES.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Ok((0, 0)); // not reentrant; never expected (nothing here awaits)
        };
        let batch = slot.get_or_insert_with(|| RecvBatch::new(REPLY_SLOTS, MAX_DATAGRAM));
        match batch.try_recv(from) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((0, 0)),
            Err(e) => return Err(e),
        }
        let datagrams: Vec<&[u8]> = batch
            .iter()
            .filter(|d| !d.truncated)
            .map(|d| d.data)
            .collect();
        Ok((datagrams.len(), try_send(to, Some(dest), &datagrams)))
    })
}

#[cfg(target_os = "linux")]
mod linux {
    //! The Linux system calls: `recvmmsg`, `sendmmsg`, `sendmsg` with `UDP_SEGMENT`.

    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::net::UdpSocket;

    use super::{MAX_BATCH, RecvBatch, Slot};

    /// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
    const GSO_MAX_SEGMENTS: usize = 64;

    /// Most payload bytes in one GSO send (one IPv6 datagram's worth, with room for headers).
    const GSO_MAX_BYTES: usize = 65_000;

    /// GSO was refused for want of the device's support (`EIO`): not tried again.
    static GSO_OFF: AtomicBool = AtomicBool::new(false);

    /// The smallest segment size GSO was refused for (`EINVAL`: larger than the path's MTU);
    /// segments this size or larger go by `sendmmsg`.
    static GSO_TOO_BIG: AtomicUsize = AtomicUsize::new(usize::MAX);

    pub(super) fn setsockopt_int(socket: &UdpSocket, level: i32, name: i32, value: i32) -> bool {
        // SAFETY: `value` lives across the call and its size is passed with it; the descriptor
        // belongs to `socket`, borrowed for the call.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                size_of::<i32>() as libc::socklen_t,
            )
        };
        r == 0
    }

    pub(super) fn getsockopt_int(socket: &UdpSocket, level: i32, name: i32) -> Option<i32> {
        let mut value: i32 = 0;
        let mut len = size_of::<i32>() as libc::socklen_t;
        // SAFETY: `value` and `len` live across the call and `len` is `value`'s size; the
        // descriptor belongs to `socket`, borrowed for the call.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(value)
    }

    impl RecvBatch {
        /// One `recvmmsg` into the slots; the number filled.
        pub(super) fn recvmmsg(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            let n = self.capacity;
            // SAFETY: iovec and mmsghdr are plain integers and pointers; all zeroes (null
            // pointers, zero lengths) is a valid value of each.
            let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
            let slot_size = self.slot_size;
            // One base pointer per buffer, taken once: the kernel writes through them all.
            let buf = self.buf.as_mut_ptr();
            let names = self.names.as_mut_ptr();
            let control = self.control.as_mut_ptr();
            let iov = iovs.as_mut_ptr();
            for (i, hdr) in hdrs.iter_mut().take(n).enumerate() {
                let slot = iov.wrapping_add(i);
                // SAFETY: `i < n <= MAX_BATCH`: `slot` is within `iovs`, which is alive.
                unsafe {
                    (*slot).iov_base = buf.wrapping_add(i * slot_size).cast();
                    (*slot).iov_len = slot_size;
                }
                let h = &mut hdr.msg_hdr;
                h.msg_name = names.wrapping_add(i).cast();
                h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = slot;
                h.msg_iovlen = 1;
                h.msg_control = control.wrapping_add(i).cast();
                h.msg_controllen = size_of::<[u64; 8]>() as _;
            }
            // SAFETY: the first `n` headers point at `n` distinct buffers of `slot_size` bytes
            // in `self.buf`, at `n` sockaddr_storage and `n` control buffers, all with their true
            // sizes and all living (and not otherwise borrowed) across the call; `n <=
            // MAX_BATCH` headers exist. MSG_TRUNC makes each `msg_len` the datagram's true length.
            let r = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as _,
                    std::ptr::null_mut(),
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            let got = (r as usize).min(n);
            for (i, hdr) in hdrs.iter().take(got).enumerate() {
                let len = hdr.msg_len as usize;
                let h = &hdr.msg_hdr;
                self.got.push(Slot {
                    src: from_storage(&self.names[i], h.msg_namelen),
                    filled: len.min(slot_size),
                    len,
                    segment: gro_segment(h),
                });
            }
            Ok(got)
        }
    }

    /// The GRO segment size a received message's control data carries (0: none).
    fn gro_segment(h: &libc::msghdr) -> usize {
        let mut segment = 0;
        // SAFETY: `h` is a header `recvmmsg` filled: its control pointer and (updated) length
        // describe the control buffer it wrote, which is still alive; CMSG_FIRSTHDR/NXTHDR stay
        // within it, and CMSG_DATA of a UDP_GRO message holds one int (read unaligned).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                    segment = usize::try_from(v).unwrap_or(0);
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        segment
    }

    /// A socket address the kernel wrote.
    fn from_storage(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match s.ss_family as libc::c_int {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, which it is large
                // and aligned enough for.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6, as above.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// `addr` as the kernel takes it.
    fn to_storage(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: plain integers; all zeroes is valid.
        let mut s: libc::sockaddr_storage = unsafe { zeroed() };
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
                let v4 = unsafe {
                    &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                v4.sin_family = libc::AF_INET as libc::sa_family_t;
                v4.sin_port = a.port().to_be();
                v4.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                (s, size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above, for a sockaddr_in6.
                let v6 = unsafe {
                    &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                v6.sin6_port = a.port().to_be();
                v6.sin6_addr.s6_addr = a.ip().octets();
                v6.sin6_flowinfo = a.flowinfo();
                v6.sin6_scope_id = a.scope_id();
                (s, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }

    /// The GSO segment size `datagrams` can go with: two or more, all one size but the last,
    /// which is not longer and not empty, and within the kernel's limits.
    fn gso_segment(datagrams: &[&[u8]]) -> Option<usize> {
        let (last, body) = datagrams.split_last()?;
        let seg = body.first()?.len();
        let total: usize = datagrams.iter().map(|d| d.len()).sum();
        let fits = seg > 0
            && datagrams.len() <= GSO_MAX_SEGMENTS
            && total <= GSO_MAX_BYTES
            && seg < GSO_TOO_BIG.load(Ordering::Relaxed)
            && !last.is_empty()
            && last.len() <= seg
            && body.iter().all(|d| d.len() == seg);
        (fits && !GSO_OFF.load(Ordering::Relaxed)).then_some(seg)
    }

    /// Sends a prefix of `datagrams` (at least one, or an error for the first) in one system
    /// call; how many went.
    pub(super) fn send_some(
        socket: &UdpSocket,
        dest: Option<SocketAddr>,
        datagrams: &[&[u8]],
    ) -> io::Result<usize> {
        let mut name = dest.as_ref().map(to_storage);
        let n = datagrams.len().min(MAX_BATCH);
        let datagrams = &datagrams[..n];
        // SAFETY: plain integers and pointers; all zeroes is valid.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        for (iov, d) in iovs.iter_mut().zip(datagrams) {
            // The kernel only reads through it (sendmsg's iovecs are not written).
            iov.iov_base = d.as_ptr() as *mut libc::c_void;
            iov.iov_len = d.len();
        }
        let (name_ptr, name_len) = match name.as_mut() {
            Some((s, len)) => ((s as *mut libc::sockaddr_storage).cast(), *len),
            None => (std::ptr::null_mut(), 0),
        };
        if let Some(seg) = gso_segment(datagrams) {
            let mut control = [0u64; 4];
            // SAFETY: plain integers and pointers; all zeroes is valid.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = name_ptr;
            h.msg_namelen = name_len;
            h.msg_iov = iovs.as_mut_ptr();
            h.msg_iovlen = n as _;
            h.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
            // SAFETY: the control buffer (32 bytes, 8-aligned) holds CMSG_SPACE(2); the first
            // header is within it and CMSG_DATA of it has room for the u16 (written unaligned).
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
            }
            // SAFETY: `h` points at `n` iovecs over the borrowed datagrams, the destination
            // (or none) and the control buffer, all alive across the call.
            let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &h, libc::MSG_DONTWAIT) };
            if r >= 0 {
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EIO) => GSO_OFF.store(true, Ordering::Relaxed),
                Some(libc::EINVAL) | Some(libc::EMSGSIZE) => {
                    GSO_TOO_BIG.fetch_min(seg, Ordering::Relaxed);
                }
                _ => return Err(e), // WouldBlock among them: nothing was sent
            }
            // Refused as a whole (nothing sent): one message per datagram instead.
        }
        // SAFETY: plain integers and pointers; all zeroes is valid.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for (i, hdr) in hdrs.iter_mut().take(n).enumerate() {
            let h = &mut hdr.msg_hdr;
            h.msg_name = name_ptr;
            h.msg_namelen = name_len;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers each point at one iovec over a borrowed datagram and
        // at the destination (or none), all alive across the call; `n <= MAX_BATCH`.
        let r = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        match r {
            r if r < 0 => Err(io::Error::last_os_error()),
            0 => Err(io::ErrorKind::WouldBlock.into()),
            r => Ok((r as usize).min(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::net::UdpSocket;

    use super::*;

    async fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.expect("bind")
    }

    /// Receives until `want` datagrams have come (each receive may see part of them).
    async fn collect(
        batch: &mut RecvBatch,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(SocketAddr, Vec<u8>, bool, usize)> {
        let mut out = Vec::new();
        while out.len() < want {
            tokio::time::timeout(Duration::from_secs(5), batch.recv(socket))
                .await
                .expect("datagrams in time")
                .expect("recv");
            out.extend(
                batch
                    .iter()
                    .map(|d| (d.src, d.data.to_vec(), d.truncated, d.len)),
            );
        }
        out
    }

    async fn several_sources(mut batch: RecvBatch) {
        let rx = bound().await;
        let to = rx.local_addr().expect("addr");
        let (a, b, c) = (bound().await, bound().await, bound().await);
        for (s, tag) in [(&a, b'a'), (&a, b'A'), (&b, b'b'), (&c, b'c'), (&b, b'B')] {
            s.send_to(&[tag; 10], to).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = collect(&mut batch, &rx, 5).await;
        let want = [(&a, b'a'), (&a, b'A'), (&b, b'b'), (&c, b'c'), (&b, b'B')];
        assert_eq!(got.len(), 5);
        for ((src, data, truncated, len), (s, tag)) in got.iter().zip(want) {
            assert_eq!(*src, s.local_addr().expect("addr"));
            assert_eq!(data, &vec![tag; 10]);
            assert!(!truncated);
            assert_eq!(*len, 10);
        }
    }

    #[tokio::test]
    async fn a_batch_holds_datagrams_from_several_sources_in_order() {
        several_sources(RecvBatch::new(8, 2048)).await;
        several_sources(RecvBatch::new(8, 2048).short_batch_drains()).await;
    }

    #[tokio::test]
    async fn the_portable_path_receives_the_same() {
        several_sources(RecvBatch::new(8, 2048).portable()).await;
    }

    #[tokio::test]
    async fn one_receive_takes_what_is_queued_and_runs_group_by_source() {
        let rx = bound().await;
        let to = rx.local_addr().expect("addr");
        let (a, b) = (bound().await, bound().await);
        for (s, n) in [(&a, 1u8), (&a, 2), (&a, 3), (&b, 4), (&a, 5)] {
            s.send_to(&[n], to).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut batch = RecvBatch::new(8, 2048);
        rx.readable().await.expect("readable");
        assert_eq!(
            batch.try_recv(&rx).expect("recv"),
            5,
            "one call, five datagrams"
        );
        let runs: Vec<(SocketAddr, Vec<Vec<u8>>)> = batch
            .runs()
            .map(|(src, r)| (src, r.iter().map(|d| d.to_vec()).collect()))
            .collect();
        let (a, b) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        assert_eq!(
            runs,
            vec![
                (a, vec![vec![1], vec![2], vec![3]]),
                (b, vec![vec![4]]),
                (a, vec![vec![5]]),
            ]
        );
        // Nothing more: the next try says so rather than waiting.
        let e = batch.try_recv(&rx).expect_err("empty");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[tokio::test]
    async fn a_full_batch_leaves_the_rest_for_the_next_receive() {
        let rx = bound().await;
        let to = rx.local_addr().expect("addr");
        let tx = bound().await;
        for n in 0..7u8 {
            tx.send_to(&[n; 3], to).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut batch = RecvBatch::new(3, 64).short_batch_drains();
        let got = collect(&mut batch, &rx, 7).await;
        let data: Vec<u8> = got.iter().map(|g| g.1[0]).collect();
        assert_eq!(data, (0..7).collect::<Vec<u8>>());
        // After a short (draining) batch, a later datagram still wakes the receiver.
        tx.send_to(b"late", to).await.expect("send");
        let got = collect(&mut batch, &rx, 1).await;
        assert_eq!(got[0].1, b"late");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn oversized_datagrams_are_reported_truncated_and_left_out_of_runs() {
        let rx = bound().await;
        let to = rx.local_addr().expect("addr");
        let tx = bound().await;
        tx.send_to(&[7u8; 100], to).await.expect("send");
        tx.send_to(&[8u8; 10], to).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut batch = RecvBatch::new(4, 16);
        let got = collect(&mut batch, &rx, 2).await;
        assert_eq!(got[0].1, vec![7u8; 16]);
        assert!(got[0].2, "truncated");
        assert_eq!(got[0].3, 100, "its true length");
        assert_eq!((got[1].1.as_slice(), got[1].2), (&[8u8; 10][..], false));
        assert_eq!(batch.truncated(), 1);
        let runs: Vec<usize> = batch.runs().map(|(_, r)| r.len()).collect();
        assert_eq!(runs, vec![1]);
    }

    #[tokio::test]
    async fn send_delivers_equal_and_mixed_sizes_in_order() {
        let rx = bound().await;
        let to = rx.local_addr().expect("addr");
        let tx = bound().await;
        // Equal sizes with a shorter last one (GSO where the kernel has it), then mixed sizes
        // (sendmmsg), then one to a connected socket.
        let equal: Vec<Vec<u8>> = (0..5u8)
            .map(|n| vec![n; if n == 4 { 300 } else { 1000 }])
            .collect();
        let mixed: Vec<Vec<u8>> = [5u8, 6, 7]
            .iter()
            .map(|&n| vec![n; 10 + n as usize])
            .collect();
        let refs: Vec<&[u8]> = equal.iter().map(|d| d.as_slice()).collect();
        assert_eq!(send(&tx, Some(to), &refs).await, 4300);
        let refs: Vec<&[u8]> = mixed.iter().map(|d| d.as_slice()).collect();
        assert_eq!(send(&tx, Some(to), &refs).await, 15 + 16 + 17);
        tx.connect(to).await.expect("connect");
        assert_eq!(try_send(&tx, None, &[b"last"]), 4);
        let mut batch = RecvBatch::new(4, MAX_DATAGRAM);
        let got = collect(&mut batch, &rx, 9).await;
        let sizes: Vec<(u8, usize)> = got.iter().map(|g| (g.1[0], g.1.len())).collect();
        assert_eq!(
            sizes,
            vec![
                (0, 1000),
                (1, 1000),
                (2, 1000),
                (3, 1000),
                (4, 300),
                (5, 15),
                (6, 16),
                (7, 17),
                (b'l', 4)
            ]
        );
    }

    #[tokio::test]
    async fn coalesced_datagrams_are_split_again() {
        let rx = bound().await;
        let gro = enable_gro(&rx);
        let to = rx.local_addr().expect("addr");
        let tx = bound().await;
        let data: Vec<Vec<u8>> = (0..6u8)
            .map(|n| vec![n; if n == 5 { 200 } else { 1200 }])
            .collect();
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        assert_eq!(send(&tx, Some(to), &refs).await, 6200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut batch = RecvBatch::new(2, MAX_DATAGRAM);
        rx.readable().await.expect("readable");
        let slots = batch.try_recv(&rx).expect("recv");
        let mut got: Vec<(SocketAddr, Vec<u8>, bool, usize)> = batch
            .iter()
            .map(|d| (d.src, d.data.to_vec(), d.truncated, d.len))
            .collect();
        if gro {
            // Sent with GSO over loopback to a GRO socket: one buffer, six datagrams.
            assert_eq!((slots, got.len()), (1, 6), "coalesced");
        }
        let more = 6 - got.len();
        got.extend(collect(&mut batch, &rx, more).await);
        let sizes: Vec<(u8, usize)> = got.iter().map(|g| (g.1[0], g.1.len())).collect();
        assert_eq!(
            sizes,
            vec![
                (0, 1200),
                (1, 1200),
                (2, 1200),
                (3, 1200),
                (4, 1200),
                (5, 200)
            ],
            "gro enabled: {gro}"
        );
    }

    #[tokio::test]
    async fn a_receive_buffer_grows_and_never_shrinks() {
        let s = bound().await;
        let before = grow_receive_buffer(&s, 0);
        let after = grow_receive_buffer(&s, LISTENER_RCVBUF);
        assert!(after >= before, "{before} -> {after}");
        if cfg!(target_os = "linux") {
            assert!(before > 0);
        }
    }

    #[tokio::test]
    async fn relay_moves_what_is_queued_to_the_destination() {
        let upstream = bound().await;
        let flow = bound().await;
        flow.connect(upstream.local_addr().expect("addr"))
            .await
            .expect("connect");
        let listener = bound().await;
        let client = bound().await;
        let client_addr = client.local_addr().expect("addr");
        let to = flow.local_addr().expect("addr");
        for n in 0..3u8 {
            upstream.send_to(&[n; 50], to).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        flow.readable().await.expect("readable");
        assert_eq!(
            relay(&flow, &listener, client_addr).expect("relay"),
            (3, 150)
        );
        assert_eq!(relay(&flow, &listener, client_addr).expect("relay"), (0, 0));
        let mut batch = RecvBatch::new(4, 2048).portable();
        let got = collect(&mut batch, &client, 3).await;
        for (n, g) in got.iter().enumerate() {
            assert_eq!(g.0, listener.local_addr().expect("addr"));
            assert_eq!(g.1, vec![n as u8; 50]);
        }
    }
}
