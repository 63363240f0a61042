//! A TUN device: an IP interface whose packets the runner reads and writes through a
//! file descriptor.
//!
//! Opened without packet-information headers (each read is exactly one IP packet) and
//! without virtio headers (so the kernel hands over packets with their checksums done:
//! no offload to finish here). The device is not persistent: it disappears when its
//! descriptor closes, which is also what happens when the runner is SIGKILLed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest of the
/// union is unused here).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One TUN device, non-blocking, read and written from async tasks.
pub struct Tun {
    fd: AsyncFd<File>,
}

impl Tun {
    /// Creates the device `name` (at most 15 bytes) in the caller's network namespace.
    pub fn create(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::other(format!(
                "interface name {name:?} must be 1 to 15 bytes"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads (and writes back the name into) an ifreq-sized buffer,
        // which `req` is; the descriptor is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor is owned by `file`, which the AsyncFd owns and
        // deregisters before closing.
        let fd = unsafe { AsyncFd::register(file) }?;
        Ok(Tun { fd })
    }

    /// Reads one packet, waiting until there is one.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|f| {
                let mut file: &File = f.get_ref();
                file.read(buf)
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Hands one packet to the kernel, as if it arrived on this interface. A full queue
    /// drops the packet, as a congested link would: TCP resends it.
    pub fn send(&self, packet: &[u8]) {
        let mut file: &File = self.fd.get_ref();
        let _ = file.write(packet);
    }
}
