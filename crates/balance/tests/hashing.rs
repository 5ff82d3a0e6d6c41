//! ip_hash, hash, hash consistent and random.
//!
//! Expected mappings were computed independently with Python's
//! `zlib.crc32` following nginx's formulas.

use balance::{Balancer, Method, NoLivePeer, Outcome, PeerConfig, PeerId};

fn named(spec: &[(&str, u32)]) -> Vec<PeerConfig> {
    spec.iter()
        .map(|&(n, w)| PeerConfig::new(n).weight(w))
        .collect()
}

fn name(b: &Balancer, id: PeerId) -> String {
    b.peer(id).unwrap().0.name.clone()
}

fn first_pick(b: &mut Balancer, key: &[u8]) -> String {
    let mut a = b.start();
    let id = b.pick(&mut a, key, 0).unwrap();
    b.finish(id, Outcome::Success, 0);
    name(b, id)
}

#[test]
fn ip_hash_uses_first_three_octets() {
    let mut b = Balancer::new(Method::IpHash, named(&[("a", 1), ("b", 1), ("c", 1)]), 0).unwrap();
    // hash(192.168.1) = 154 -> 154 % 3 = 1; hash(10.0.0) = 2565 -> 0.
    assert_eq!(first_pick(&mut b, &[192, 168, 1, 10]), "b");
    assert_eq!(first_pick(&mut b, &[192, 168, 1, 20]), "b");
    assert_eq!(first_pick(&mut b, &[10, 0, 0, 1]), "a");
    // Sticky across many requests.
    for _ in 0..10 {
        assert_eq!(first_pick(&mut b, &[192, 168, 1, 99]), "b");
    }
    // IPv6 uses all 16 bytes.
    let v6a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut v6b = v6a;
    v6b[15] = 2;
    let x = first_pick(&mut b, &v6a);
    assert_eq!(x, first_pick(&mut b, &v6a));
    let _ = first_pick(&mut b, &v6b);
}

#[test]
fn ip_hash_rehashes_past_a_down_peer() {
    let p = vec![
        PeerConfig::new("a"),
        PeerConfig::new("b").down(true),
        PeerConfig::new("c"),
    ];
    let mut b = Balancer::new(Method::IpHash, p, 0).unwrap();
    // 192.168.1.x lands on b (down): the second round of the hash decides.
    let got = first_pick(&mut b, &[192, 168, 1, 10]);
    assert_ne!(got, "b");
    assert_eq!(got, first_pick(&mut b, &[192, 168, 1, 77]));
}

#[test]
fn hash_key_weighted() {
    let mut b = Balancer::new(
        Method::Hash { consistent: false },
        named(&[("a", 1), ("b", 2), ("c", 3)]),
        0,
    )
    .unwrap();
    // (crc32(key) >> 16) & 0x7fff, then % total_weight (6), walked by weight.
    assert_eq!(first_pick(&mut b, b"a"), "c"); // 26807 % 6 = 5
    assert_eq!(first_pick(&mut b, b"foo"), "b"); // 3187 % 6 = 1
    assert_eq!(first_pick(&mut b, b"/index.html"), "b"); // 27170 % 6 = 2
}

#[test]
fn hash_retry_picks_another_peer() {
    let mut b = Balancer::new(
        Method::Hash { consistent: false },
        named(&[("a", 1), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    let mut at = b.start();
    let mut seen = vec![];
    for _ in 0..3 {
        let id = b.pick(&mut at, b"some-key", 0).unwrap();
        assert!(!seen.contains(&id));
        seen.push(id);
        b.finish(id, Outcome::Failure, 0);
    }
    assert_eq!(b.pick(&mut at, b"some-key", 0), Err(NoLivePeer));
}

fn ketama_set() -> Vec<PeerConfig> {
    named(&[
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 2),
        ("backend.local", 1),
        ("unix:/tmp/app.sock", 1),
    ])
}

#[test]
fn ketama_known_mapping() {
    let mut b = Balancer::new(Method::Hash { consistent: true }, ketama_set(), 0).unwrap();
    let expect = [
        ("a", "backend.local"),
        ("b", "unix:/tmp/app.sock"),
        ("foo", "10.0.0.1:80"),
        ("/index.html", "10.0.0.1:80"),
        ("/api/v1/users", "backend.local"),
        ("user-42", "10.0.0.1:80"),
        ("xyz", "10.0.0.2:80"),
        ("hello world", "10.0.0.1:80"),
    ];
    for (key, want) in expect {
        assert_eq!(first_pick(&mut b, key.as_bytes()), want, "key {key}");
        let owner = b.chash_owner(key.as_bytes()).unwrap();
        assert_eq!(name(&b, owner), want);
    }
}

#[test]
fn ketama_walks_to_next_point_on_failure() {
    let mut b = Balancer::new(Method::Hash { consistent: true }, ketama_set(), 0).unwrap();
    let mut at = b.start();
    let first = b.pick(&mut at, b"foo", 0).unwrap();
    assert_eq!(name(&b, first), "10.0.0.1:80");
    b.finish(first, Outcome::Failure, 0);
    let second = b.pick(&mut at, b"foo", 0).unwrap();
    assert_ne!(second, first);
    b.finish(second, Outcome::Success, 0);
    // Other keys owned by other peers are unaffected by the failure.
    assert_eq!(first_pick(&mut b, b"xyz"), "10.0.0.2:80");
    // Keys owned by the failed peer go elsewhere until fail_timeout.
    assert_ne!(first_pick(&mut b, b"foo"), "10.0.0.1:80");
}

#[test]
fn empty_key_falls_back_to_round_robin() {
    let mut b = Balancer::new(Method::Hash { consistent: true }, ketama_set(), 0).unwrap();
    let got: Vec<String> = (0..5).map(|_| first_pick(&mut b, b"")).collect();
    let mut uniq = got.clone();
    uniq.sort();
    uniq.dedup();
    assert!(uniq.len() >= 4, "{got:?}");
}

#[test]
fn random_is_weighted_and_seeded() {
    let spec = [("a", 1), ("b", 3)];
    let mut b = Balancer::new(Method::Random { two: false }, named(&spec), 7).unwrap();
    let mut c = Balancer::new(Method::Random { two: false }, named(&spec), 7).unwrap();
    let mut count_b = 0;
    for _ in 0..4000 {
        let x = first_pick(&mut b, b"");
        assert_eq!(x, first_pick(&mut c, b""), "same seed, same sequence");
        if x == "b" {
            count_b += 1;
        }
    }
    assert!((2800..3200).contains(&count_b), "{count_b}");
}

#[test]
fn random_two_prefers_fewer_conns() {
    let mut b = Balancer::new(
        Method::Random { two: true },
        named(&[("a", 1), ("b", 1)]),
        1,
    )
    .unwrap();
    // Hold a connection on whichever is picked first; with two peers the
    // two choices are always {a, b}, so the other one must come next.
    let x = b.pick(&mut b.start(), b"", 0).unwrap();
    for _ in 0..20 {
        let y = b.pick(&mut b.start(), b"", 0).unwrap();
        assert_ne!(x, y);
        b.finish(y, Outcome::Success, 0);
    }
}

#[test]
fn attempt_from_before_set_peers_falls_back_to_round_robin() {
    let m = Method::Hash { consistent: true };
    let mut b = Balancer::new(m, ketama_set(), 0).unwrap();
    let mut old = b.start();
    b.set_peers(ketama_set()).unwrap();
    // Same peers, so ids are kept; the stale attempt is served by round
    // robin (first round: the heaviest peer, 10.0.0.3:80).
    let id = b.pick(&mut old, b"foo", 0).unwrap();
    assert_eq!(name(&b, id), "10.0.0.3:80");
    // A fresh attempt uses the rebuilt ring.
    assert_eq!(first_pick(&mut b, b"foo"), "10.0.0.1:80");
}
