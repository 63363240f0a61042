//! The little of IPv4 and TCP the switch needs: where a packet goes, and the reset a
//! cut link answers with.

use std::net::Ipv4Addr;

const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Source and destination of an IPv4 packet; `None` for anything else (IPv6 router
/// solicitations, truncated packets), which the switch drops.
pub fn ipv4_ends(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some((src, dst))
}

/// The internet checksum (RFC 1071) of `data`, continuing from `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The TCP reset that tells the sender of `p` its connection is gone, as the peer's
/// kernel would answer (RFC 9293 3.10.7.1): `None` when `p` is not TCP, is itself a
/// reset, or is malformed. A cut link answers every TCP packet with one, so both new
/// and live connections fail at once, as in proxy mode.
pub fn tcp_reset_for(p: &[u8]) -> Option<Vec<u8>> {
    let (src, dst) = ipv4_ends(p)?;
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if p[9] != PROTO_TCP || ihl < 20 || total > p.len() || total < ihl + 20 {
        return None;
    }
    let tcp = &p[ihl..total];
    let flags = tcp[13];
    if flags & TCP_RST != 0 {
        return None;
    }
    let data_off = usize::from(tcp[12] >> 4) * 4;
    if data_off < 20 || data_off > tcp.len() {
        return None;
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    // With an ACK, the reset takes its sequence number from it; without one (a SYN),
    // it acknowledges everything the segment occupied.
    let (r_seq, r_ack, r_flags) = if flags & TCP_ACK != 0 {
        (ack, 0, TCP_RST)
    } else {
        let len = (tcp.len() - data_off) as u32
            + u32::from(flags & TCP_SYN != 0)
            + u32::from(flags & TCP_FIN != 0);
        (0, seq.wrapping_add(len), TCP_RST | TCP_ACK)
    };
    let mut out = vec![0u8; 40];
    out[0] = 0x45;
    out[2..4].copy_from_slice(&40u16.to_be_bytes());
    out[6] = 0x40; // don't fragment
    out[8] = 64;
    out[9] = PROTO_TCP;
    out[12..16].copy_from_slice(&dst.octets());
    out[16..20].copy_from_slice(&src.octets());
    let ip_sum = checksum(0, &out[..20]);
    out[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let t = &mut out[20..];
    t[0..2].copy_from_slice(&tcp[2..4]);
    t[2..4].copy_from_slice(&tcp[0..2]);
    t[4..8].copy_from_slice(&r_seq.to_be_bytes());
    t[8..12].copy_from_slice(&r_ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = r_flags;
    // Pseudo-header: source, destination, protocol, TCP length.
    let mut pseudo = 0u32;
    for half in [dst.octets(), src.octets()] {
        pseudo += u32::from(u16::from_be_bytes([half[0], half[1]]));
        pseudo += u32::from(u16::from_be_bytes([half[2], half[3]]));
    }
    pseudo += u32::from(PROTO_TCP) + 20;
    let tcp_sum = checksum(pseudo, &out[20..]);
    out[36..38].copy_from_slice(&tcp_sum.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/TCP packet from 10.0.0.1:1000 to 10.0.0.2:2000.
    fn tcp_packet(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&ack.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p[40..].copy_from_slice(payload);
        p
    }

    fn verify_sums(r: &[u8]) {
        assert_eq!(checksum(0, &r[..20]), 0, "IP header checksum");
        let mut pseudo = 0u32;
        for c in r[12..20].chunks(2) {
            pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        pseudo += 6 + (r.len() as u32 - 20);
        assert_eq!(checksum(pseudo, &r[20..]), 0, "TCP checksum");
    }

    #[test]
    fn a_syn_is_refused_with_a_reset_that_acknowledges_it() {
        let r = tcp_reset_for(&tcp_packet(TCP_SYN, 77, 0, b"")).unwrap();
        assert_eq!(
            ipv4_ends(&r).unwrap(),
            ([10, 0, 0, 2].into(), [10, 0, 0, 1].into())
        );
        assert_eq!(&r[20..24], &[0x07, 0xd0, 0x03, 0xe8], "ports swapped");
        assert_eq!(u32::from_be_bytes(r[24..28].try_into().unwrap()), 0);
        assert_eq!(u32::from_be_bytes(r[28..32].try_into().unwrap()), 78);
        assert_eq!(r[33], TCP_RST | TCP_ACK);
        verify_sums(&r);
    }

    #[test]
    fn data_on_a_live_connection_gets_a_reset_in_its_window() {
        let r = tcp_reset_for(&tcp_packet(TCP_ACK, 5, 9_000, b"hello")).unwrap();
        assert_eq!(u32::from_be_bytes(r[24..28].try_into().unwrap()), 9_000);
        assert_eq!(r[33], TCP_RST);
        verify_sums(&r);
    }

    #[test]
    fn resets_udp_and_garbage_get_no_answer() {
        assert!(tcp_reset_for(&tcp_packet(TCP_RST | TCP_ACK, 1, 1, b"")).is_none());
        let mut udp = tcp_packet(TCP_ACK, 1, 1, b"");
        udp[9] = 17;
        assert!(tcp_reset_for(&udp).is_none());
        assert!(tcp_reset_for(&[0x45; 10]).is_none());
        let mut lying = tcp_packet(TCP_ACK, 1, 1, b"");
        lying[2..4].copy_from_slice(&400u16.to_be_bytes());
        assert!(tcp_reset_for(&lying).is_none());
        assert!(ipv4_ends(&[0x60; 40]).is_none(), "IPv6 is not forwarded");
    }
}
