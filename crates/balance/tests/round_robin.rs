//! Round robin, failure accounting, backups, tries and least_conn.

use balance::{Balancer, Error, Method, NoLivePeer, Outcome, PeerConfig, PeerId};

fn peers(spec: &[(&str, u32)]) -> Vec<PeerConfig> {
    spec.iter()
        .map(|&(n, w)| PeerConfig::new(n).weight(w))
        .collect()
}

fn name(b: &Balancer, id: PeerId) -> String {
    b.peer(id).unwrap().0.name.clone()
}

/// Pick with a fresh attempt and finish successfully right away.
fn seq(b: &mut Balancer, n: usize, now: u64) -> String {
    (0..n)
        .map(|_| {
            let mut a = b.start();
            let id = b.pick(&mut a, b"", now).unwrap();
            b.finish(id, Outcome::Success, now);
            name(b, id)
        })
        .collect()
}

#[test]
fn smooth_wrr_5_1_1() {
    let mut b = Balancer::new(
        Method::RoundRobin,
        peers(&[("a", 5), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    assert_eq!(seq(&mut b, 7, 0), "aabacaa");
    assert_eq!(seq(&mut b, 7, 0), "aabacaa");
}

#[test]
fn equal_weights_alternate() {
    let mut b = Balancer::new(
        Method::RoundRobin,
        peers(&[("a", 1), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    assert_eq!(seq(&mut b, 9, 0), "abcabcabc");
}

#[test]
fn config_errors() {
    assert_eq!(
        Balancer::new(Method::RoundRobin, vec![], 0).unwrap_err(),
        Error::NoServers
    );
    let only_backup = vec![PeerConfig::new("a").backup(true)];
    assert_eq!(
        Balancer::new(Method::RoundRobin, only_backup, 0).unwrap_err(),
        Error::NoServers
    );
    for m in [
        Method::IpHash,
        Method::Hash { consistent: true },
        Method::Random { two: false },
    ] {
        let p = vec![PeerConfig::new("a"), PeerConfig::new("b").backup(true)];
        let e = Balancer::new(m, p, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "balancing method does not support parameter \"backup\""
        );
    }
    let p = vec![PeerConfig::new("a").weight(0)];
    assert!(matches!(
        Balancer::new(Method::RoundRobin, p, 0),
        Err(Error::ZeroWeight(_))
    ));
}

#[test]
fn max_fails_and_fail_timeout() {
    let mut b = Balancer::new(Method::RoundRobin, peers(&[("a", 1), ("b", 1)]), 0).unwrap();
    let mut at = b.start();
    let a = b.pick(&mut at, b"", 0).unwrap();
    assert_eq!(name(&b, a), "a");
    b.finish(a, Outcome::Failure, 0);
    let st = b.peer(a).unwrap().1;
    assert_eq!((st.fails, st.effective_weight), (1, 0));
    assert!(st.failed);
    // Within fail_timeout (inclusive) only b is used.
    assert_eq!(seq(&mut b, 4, 10_000), "bbbb");
    // After fail_timeout a single probe request is let through ...
    let t = 10_001;
    let mut probe = None;
    let mut held = vec![];
    for _ in 0..4 {
        let mut at = b.start();
        let id = b.pick(&mut at, b"", t).unwrap();
        if id == a {
            assert!(probe.is_none(), "only one probe while it is in flight");
            probe = Some(id);
        } else {
            held.push(id);
        }
    }
    assert!(probe.is_some());
    // ... and its success resets fails.
    b.finish(a, Outcome::Success, t);
    assert_eq!(b.peer(a).unwrap().1.fails, 0);
    for id in held {
        b.finish(id, Outcome::Success, t);
    }
}

#[test]
fn max_fails_zero_never_fails() {
    let p = vec![PeerConfig::new("a").max_fails(0), PeerConfig::new("b")];
    let mut b = Balancer::new(Method::RoundRobin, p, 0).unwrap();
    for _ in 0..3 {
        let mut at = b.start();
        let id = b.pick(&mut at, b"", 0).unwrap();
        b.finish(id, Outcome::Failure, 0);
    }
    let (_, a) = b
        .peers_at(0)
        .next()
        .map(|(_, c, s)| (c.clone(), s))
        .unwrap();
    assert!(!a.failed);
    assert_eq!(seq(&mut b, 2, 1).len(), 2);
}

/// Regression (differential test all_peers_dead_gives_the_same_502):
/// nginx 1.22 does not reset `fails` when every peer has failed, so
/// "no live upstreams" lasts until fail_timeout, for every request.
#[test]
fn all_failed_returns_no_live_until_fail_timeout() {
    let mut b = Balancer::new(Method::RoundRobin, peers(&[("a", 1), ("b", 1)]), 0).unwrap();
    for _ in 0..2 {
        let mut at = b.start();
        let id = b.pick(&mut at, b"", 0).unwrap();
        b.finish(id, Outcome::Failure, 0);
    }
    for now in [1, 2, 10_000] {
        assert_eq!(
            b.pick(&mut b.start(), b"", now),
            Err(NoLivePeer),
            "at {now}"
        );
    }
    assert!(b.peers_at(10_000).all(|(_, _, s)| s.fails == 1));
    assert!(b.pick(&mut b.start(), b"", 10_001).is_ok());
}

#[test]
fn single_peer_ignores_max_fails() {
    let mut b = Balancer::new(Method::RoundRobin, peers(&[("a", 1)]), 0).unwrap();
    let mut at = b.start();
    assert_eq!(at.tries_left(), 1);
    for _ in 0..5 {
        let id = b.pick(&mut at, b"", 0).unwrap();
        assert_eq!(at.tries_left(), 0);
        b.finish(id, Outcome::Failure, 0);
        at = b.start();
    }
    let st = b.peers().next().unwrap().2;
    assert_eq!((st.fails, st.failed, st.failures), (0, false, 5));
    // down still applies
    let mut d =
        Balancer::new(Method::RoundRobin, vec![PeerConfig::new("a").down(true)], 0).unwrap();
    assert_eq!(d.pick(&mut d.start(), b"", 0), Err(NoLivePeer));
}

#[test]
fn backups_only_when_primaries_unavailable() {
    let p = vec![
        PeerConfig::new("a"),
        PeerConfig::new("b"),
        PeerConfig::new("c").backup(true),
        PeerConfig::new("d").backup(true).down(true),
    ];
    let mut b = Balancer::new(Method::RoundRobin, p, 0).unwrap();
    assert_eq!(b.start().tries_left(), 3);
    assert_eq!(seq(&mut b, 4, 0), "abab");
    // A request that fails on both primaries moves on to the backup.
    let mut at = b.start();
    for _ in 0..2 {
        let id = b.pick(&mut at, b"", 0).unwrap();
        b.finish(id, Outcome::Failure, 0);
    }
    assert_eq!(at.tries_left(), 1);
    let id = b.pick(&mut at, b"", 0).unwrap();
    assert_eq!(name(&b, id), "c");
    assert!(at.in_backup());
    b.finish(id, Outcome::Success, 0);
    // New requests go to the backup while primaries are failed.
    assert_eq!(seq(&mut b, 2, 5), "cc");
    // And back to the primaries after fail_timeout.
    let s = seq(&mut b, 2, 20_000);
    assert!(!s.contains('c'), "{s}");
}

#[test]
fn tried_peers_are_not_repeated_and_exhaustion_is_busy() {
    let mut b = Balancer::new(
        Method::RoundRobin,
        peers(&[("a", 3), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    let mut at = b.start();
    let mut seen = vec![];
    for _ in 0..3 {
        let id = b.pick(&mut at, b"", 0).unwrap();
        assert!(!seen.contains(&id));
        seen.push(id);
        b.finish(id, Outcome::Failure, 0);
    }
    assert_eq!(at.tries_left(), 0);
    assert_eq!(b.pick(&mut at, b"", 0), Err(NoLivePeer));
}

#[test]
fn limit_tries() {
    let b = Balancer::new(
        Method::RoundRobin,
        peers(&[("a", 1), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    let mut at = b.start();
    at.limit_tries(0);
    assert_eq!(at.tries_left(), 3);
    at.limit_tries(2);
    assert_eq!(at.tries_left(), 2);
}

#[test]
fn max_conns_respected() {
    let p = vec![
        PeerConfig::new("a").max_conns(1),
        PeerConfig::new("b").max_conns(1),
    ];
    let mut b = Balancer::new(Method::RoundRobin, p, 0).unwrap();
    let x = b.pick(&mut b.start(), b"", 0).unwrap();
    let y = b.pick(&mut b.start(), b"", 0).unwrap();
    assert_ne!(x, y);
    assert_eq!(b.pick(&mut b.start(), b"", 0), Err(NoLivePeer));
    b.finish(x, Outcome::Success, 0);
    assert_eq!(b.pick(&mut b.start(), b"", 0), Ok(x));
}

#[test]
fn health_check_skips_like_down() {
    let mut b = Balancer::new(Method::RoundRobin, peers(&[("a", 1), ("b", 1)]), 0).unwrap();
    let a = b.peers().next().unwrap().0;
    b.set_health(a, false);
    assert_eq!(seq(&mut b, 3, 0), "bbb");
    b.set_health(a, true);
    assert!(seq(&mut b, 4, 0).contains('a'));
}

#[test]
fn least_conn_by_ratio_then_round_robin() {
    let mut b =
        Balancer::new(Method::LeastConn, peers(&[("a", 1), ("b", 1), ("c", 1)]), 0).unwrap();
    let mut names = String::new();
    for _ in 0..3 {
        let id = b.pick(&mut b.start(), b"", 0).unwrap();
        names.push_str(&name(&b, id));
    }
    assert_eq!(names, "abc");

    let mut w = Balancer::new(Method::LeastConn, peers(&[("a", 2), ("b", 1)]), 0).unwrap();
    let mut held = vec![];
    let mut names = String::new();
    for _ in 0..6 {
        let id = w.pick(&mut w.start(), b"", 0).unwrap();
        names.push_str(&name(&w, id));
        held.push(id);
    }
    // conns/weight stays balanced: a gets twice as many.
    assert_eq!(names.matches('a').count(), 4);
    assert_eq!(names.matches('b').count(), 2);
    for id in held {
        w.finish(id, Outcome::Success, 0);
    }
    assert!(w.peers().all(|(_, _, s)| s.active_conns == 0));
}

#[test]
fn least_conn_uses_backup() {
    let p = vec![
        PeerConfig::new("a").down(true),
        PeerConfig::new("b").backup(true),
    ];
    let mut b = Balancer::new(Method::LeastConn, p, 0).unwrap();
    let id = b.pick(&mut b.start(), b"", 0).unwrap();
    assert_eq!(name(&b, id), "b");
}

#[test]
fn set_peers_keeps_state_and_ignores_removed_ids() {
    let mut b = Balancer::new(
        Method::RoundRobin,
        peers(&[("a", 1), ("b", 1), ("c", 1)]),
        0,
    )
    .unwrap();
    let ids: Vec<PeerId> = b.peers().map(|(id, _, _)| id).collect();
    let held_a = b.pick(&mut b.start(), b"", 0).unwrap();
    assert_eq!(held_a, ids[0]);
    let held_b = b.pick(&mut b.start(), b"", 0).unwrap();
    b.finish(held_b, Outcome::Failure, 0);
    let b_stats = b.peer(held_b).unwrap().1;

    // Drop "c", keep "a" and "b" (reordered, "b" reweighted), add "d".
    b.set_peers(vec![
        PeerConfig::new("b").weight(3),
        PeerConfig::new("d"),
        PeerConfig::new("a"),
    ])
    .unwrap();
    let now: Vec<(PeerId, String)> = b.peers().map(|(id, c, _)| (id, c.name.clone())).collect();
    assert_eq!(now[0], (ids[1], "b".to_string()));
    assert_eq!(now[2], (ids[0], "a".to_string()));
    assert!(!ids.contains(&now[1].0), "new peer gets a new id");
    assert_eq!(b.peer(ids[0]).unwrap().1.active_conns, 1);
    let kept = b.peer(held_b).unwrap().1;
    assert_eq!(
        (kept.fails, kept.failures),
        (b_stats.fails, b_stats.failures)
    );
    assert!(b.peer(ids[2]).is_none());

    // finish on a removed peer is a no-op; on a kept one it still counts.
    b.finish(ids[2], Outcome::Failure, 0);
    b.finish(held_a, Outcome::Success, 0);
    assert!(b.peers().all(|(_, _, s)| s.active_conns == 0));

    // An invalid replacement is rejected and changes nothing.
    assert_eq!(b.set_peers(vec![]), Err(Error::NoServers));
    assert_eq!(b.peers().count(), 3);
}

#[test]
fn least_conn_exhaustion_keeps_fails() {
    let mut b = Balancer::new(Method::LeastConn, peers(&[("a", 1), ("b", 1)]), 0).unwrap();
    let mut at = b.start();
    for _ in 0..2 {
        let id = b.pick(&mut at, b"", 0).unwrap();
        b.finish(id, Outcome::Failure, 0);
    }
    assert_eq!(b.pick(&mut b.start(), b"", 0), Err(NoLivePeer));
    assert_eq!(b.pick(&mut b.start(), b"", 1), Err(NoLivePeer));
    assert!(b.peers().all(|(_, _, s)| s.fails == 1));
}

/// stream: a probe that connects clears `fails` at once, while its session
/// is still open, so the next picks use the recovered peer again.
#[test]
fn connected_probe_clears_fails_before_finish() {
    let mut b = Balancer::new(Method::RoundRobin, peers(&[("a", 1), ("b", 1)]), 0).unwrap();
    let mut at = b.start();
    let a = b.pick(&mut at, b"", 0).unwrap();
    b.finish(a, Outcome::Failure, 0);
    let t = 10_001;
    let mut probe = None;
    for _ in 0..4 {
        let mut at = b.start();
        let id = b.pick(&mut at, b"", t).unwrap();
        if name(&b, id) == "a" {
            probe = Some(id);
            break;
        }
    }
    let probe = probe.expect("a probe of a after fail_timeout");
    // Without a connect report, a stays out while the probe is open.
    let mut at = b.start();
    let other = b.pick(&mut at, b"", t).unwrap();
    assert_eq!(name(&b, other), "b");
    b.connected(probe);
    assert_eq!(b.peer(probe).unwrap().1.fails, 0);
    assert_eq!(
        b.peer(probe).unwrap().1.active_conns,
        1,
        "still counted active"
    );
    // a is in the rotation again (its effective weight climbs back).
    let picks: String = (0..4)
        .map(|_| {
            let mut at = b.start();
            let id = b.pick(&mut at, b"", t).unwrap();
            name(&b, id)
        })
        .collect();
    assert!(picks.contains('a'), "{picks}");
}
