//! Property tests over random configurations and operation sequences.

use std::collections::HashMap;

use balance::{Attempt, Balancer, Method, Outcome, PeerConfig, PeerId};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::RoundRobin),
        Just(Method::LeastConn),
        Just(Method::IpHash),
        Just(Method::Hash { consistent: false }),
        Just(Method::Hash { consistent: true }),
        Just(Method::Random { two: false }),
        Just(Method::Random { two: true }),
    ]
}

/// (weight, max_fails, down, backup, max_conns)
type Spec = (u32, u32, bool, bool, u32);

fn spec() -> impl Strategy<Value = Spec> {
    (
        1u32..6,
        0u32..3,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
        0u32..3,
    )
}

fn build(method: Method, specs: &[Spec]) -> Vec<PeerConfig> {
    let mut v: Vec<PeerConfig> = specs
        .iter()
        .enumerate()
        .map(|(i, &(w, mf, down, backup, mc))| {
            PeerConfig::new(format!("10.0.0.{i}:80"))
                .weight(w)
                .max_fails(mf)
                .fail_timeout_ms(1_000)
                .down(down)
                .backup(backup && method.supports_backup())
                .max_conns(mc)
        })
        .collect();
    if v.iter().all(|p| p.backup) {
        v[0].backup = false;
    }
    v
}

#[derive(Debug, Clone)]
enum Op {
    /// Start a new request and pick.
    Fresh(u8),
    /// Retry the most recent request.
    Retry,
    /// Finish the n-th outstanding pick.
    Finish(usize, bool),
    /// Advance the clock.
    Tick(u64),
    /// Flip health of the n-th peer.
    Health(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Fresh),
        2 => Just(Op::Retry),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Finish(i, ok)),
        1 => (0u64..1500).prop_map(Op::Tick),
        1 => (any::<usize>(), prop::bool::weighted(0.7)).prop_map(|(i, h)| Op::Health(i, h)),
    ]
}

/// Whether a peer is usable per its public stats at `now`.
fn usable(b: &Balancer, now: u64) -> HashMap<PeerId, (bool, bool)> {
    b.peers_at(now)
        .map(|(id, c, s)| {
            let ok = !c.down && s.healthy && !s.failed && !s.at_max_conns;
            (id, (ok, c.backup))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_under_random_ops(
        m in method(),
        specs in prop::collection::vec(spec(), 1..7),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut b = Balancer::new(m, build(m, &specs), 42).unwrap();
        let ids: Vec<PeerId> = b.peers().map(|(id, _, _)| id).collect();
        let mut now = 0u64;
        let mut outstanding: Vec<PeerId> = vec![];
        let mut last: Option<Attempt> = None;
        for o in ops {
            let (mut at, fresh, key) = match o {
                Op::Fresh(k) => (b.start(), true, [10, 0, k, 1]),
                Op::Retry => match last.take() {
                    Some(a) if a.tries_left() > 0 => (a, false, [10, 0, 0, 1]),
                    _ => continue,
                },
                Op::Finish(i, ok) => {
                    if !outstanding.is_empty() {
                        let id = outstanding.swap_remove(i % outstanding.len());
                        let out = if ok { Outcome::Success } else { Outcome::Failure };
                        b.finish(id, out, now);
                    }
                    continue;
                }
                Op::Tick(d) => { now += d; continue; }
                Op::Health(i, h) => { b.set_health(ids[i % ids.len()], h); continue; }
            };
            let before = usable(&b, now);
            let tried_before: Vec<PeerId> =
                before.keys().copied().filter(|p| at.was_tried(*p)).collect();
            let was_backup = at.in_backup();
            if let Ok(id) = b.pick(&mut at, &key, now) {
                let (cfg, st) = b.peer(id).unwrap();
                prop_assert!(!cfg.down, "picked a down peer");
                prop_assert!(st.healthy, "picked an unhealthy peer");
                prop_assert!(cfg.max_conns == 0 || st.active_conns <= cfg.max_conns);
                if cfg.backup && !was_backup {
                    // Every primary was unavailable or already tried.
                    for (pid, (ok, backup)) in &before {
                        prop_assert!(*backup || !ok || tried_before.contains(pid),
                            "backup picked while primary {pid:?} usable (fresh={fresh})");
                    }
                }
                outstanding.push(id);
                last = Some(at);
            }
            let total: u32 = b.peers().map(|(_, _, s)| s.active_conns).sum();
            prop_assert_eq!(total as usize, outstanding.len());
        }
        for id in outstanding.drain(..) {
            b.finish(id, Outcome::Success, now);
        }
        prop_assert!(b.peers().all(|(_, _, s)| s.active_conns == 0));
    }

    #[test]
    fn round_robin_exactly_proportional(
        weights in prop::collection::vec(1u32..10, 1..7),
        rounds in 1usize..4,
        lc in any::<bool>(),
    ) {
        let peers = weights.iter().enumerate()
            .map(|(i, &w)| PeerConfig::new(format!("p{i}")).weight(w))
            .collect();
        let m = if lc { Method::LeastConn } else { Method::RoundRobin };
        let mut b = Balancer::new(m, peers, 0).unwrap();
        let total: u32 = weights.iter().sum();
        let mut counts: HashMap<PeerId, u32> = HashMap::new();
        for _ in 0..rounds as u32 * total {
            let mut a = b.start();
            let id = b.pick(&mut a, b"", 0).unwrap();
            b.finish(id, Outcome::Success, 0);
            *counts.entry(id).or_default() += 1;
        }
        for ((id, _, _), &w) in b.peers().zip(&weights) {
            prop_assert_eq!(counts.get(&id).copied().unwrap_or(0), rounds as u32 * w);
        }
    }

    #[test]
    fn ketama_adding_a_peer_moves_few_keys(n in 2usize..12, extra in 0u32..1000) {
        let mk = |k: usize| (0..k).map(|i| PeerConfig::new(format!("10.1.{}.{}:8080", extra % 256, i))).collect::<Vec<_>>();
        let m = Method::Hash { consistent: true };
        let before = Balancer::new(m, mk(n), 0).unwrap();
        let mut after = before.clone();
        after.set_peers(mk(n + 1)).unwrap();
        let new_id = after.peers().last().unwrap().0;
        let keys = 3000;
        let mut moved = 0;
        for k in 0..keys {
            let key = format!("/object/{extra}/{k}");
            let x = before.chash_owner(key.as_bytes()).unwrap();
            let y = after.chash_owner(key.as_bytes()).unwrap();
            if x != y {
                moved += 1;
                prop_assert_eq!(y, new_id, "a key moved between old peers");
            }
        }
        let frac = moved as f64 / keys as f64;
        prop_assert!(frac < 2.5 / (n as f64 + 1.0), "moved {frac} with n={n}");
    }

    #[test]
    fn set_peers_keeps_unchanged_peers(
        m in prop_oneof![Just(Method::RoundRobin), Just(Method::LeastConn),
                         Just(Method::Hash { consistent: true })],
        specs in prop::collection::vec(spec(), 2..7),
        keep in prop::collection::vec(any::<bool>(), 7),
        fails in prop::collection::vec(any::<bool>(), 0..20),
        added in 0usize..3,
    ) {
        let cfgs = build(m, &specs);
        let mut b = Balancer::new(m, cfgs.clone(), 1).unwrap();
        let mut held = vec![];
        for (i, f) in fails.iter().enumerate() {
            let Ok(id) = b.pick(&mut b.start(), format!("k{i}").as_bytes(), 0) else { continue };
            if i % 3 == 0 { held.push(id); continue; }
            b.finish(id, if *f { Outcome::Failure } else { Outcome::Success }, 0);
        }
        let snapshot: HashMap<String, _> = b.peers_at(0)
            .map(|(id, c, s)| (c.name.clone(), (id, s))).collect();
        let mut next: Vec<PeerConfig> = cfgs.iter().zip(&keep)
            .filter(|(_, k)| **k).map(|(c, _)| c.clone()).collect();
        for j in 0..added {
            next.push(PeerConfig::new(format!("new{j}:80")));
        }
        if !next.iter().any(|p| !p.backup) {
            next.push(PeerConfig::new("fallback:80"));
        }
        b.set_peers(next.clone()).unwrap();
        for (id, c, s) in b.peers_at(0) {
            match snapshot.get(&c.name) {
                Some((old_id, old)) => {
                    prop_assert_eq!(id, *old_id);
                    prop_assert_eq!(s, *old);
                }
                None => {
                    prop_assert_eq!((s.fails, s.active_conns, s.requests, s.current_weight), (0, 0, 0, 0));
                }
            }
        }
        prop_assert_eq!(b.peers().count(), next.len());
        // Finishing held picks, including on removed peers, is harmless.
        for id in held {
            b.finish(id, Outcome::Failure, 0);
        }
        let live: Vec<PeerId> = b.peers().map(|(id, _, _)| id).collect();
        for (id, _, s) in b.peers_at(0) {
            prop_assert!(live.contains(&id));
            prop_assert!(s.active_conns <= 20);
        }
    }
}
