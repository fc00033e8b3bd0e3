use super::*;
use std::net::UdpSocket as StdUdpSocket;

use super::requests::{is_reply_to, payload};
use super::sockets::{any_port, talks_to_itself, udp_client};

fn free_udp_port() -> SocketAddr {
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The kernel lets a UDP socket bound to a port connect to that same port, and then it
/// answers itself: the trap the load generator must stay out of.
#[test]
fn a_udp_socket_on_the_target_port_would_answer_itself() {
    let target = free_udp_port();
    let s = StdUdpSocket::bind(target).unwrap();
    s.connect(target).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send(b"ping").unwrap();
    let mut b = [0u8; 8];
    assert_eq!(s.recv(&mut b).unwrap(), 4, "no echo from itself");
    assert!(talks_to_itself(s.local_addr().unwrap(), target));
}

#[test]
fn udp_clients_never_land_on_the_target_port() {
    let target = free_udp_port();
    // Asked to bind exactly where the target is, it must move elsewhere.
    let s = udp_client(target, target).unwrap();
    let local = s.local_addr().unwrap();
    assert_ne!(local, target);
    assert_eq!(s.peer_addr().unwrap(), target);
    let s = udp_client(target, any_port(target)).unwrap();
    assert_ne!(s.local_addr().unwrap(), target);
}

#[test]
fn only_the_exact_request_bytes_are_a_reply() {
    for len in [1usize, 7, 8, 64] {
        let mut p = Vec::new();
        payload(42, len, &mut p);
        assert!(is_reply_to(&p, 42, len));
        assert!(!is_reply_to(&p, 43, len));
        let mut bad = p.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(
            !is_reply_to(&bad, 42, len),
            "len {len}: a flipped last byte"
        );
        assert!(!is_reply_to(&p[..len - 1], 42, len));
    }
}
