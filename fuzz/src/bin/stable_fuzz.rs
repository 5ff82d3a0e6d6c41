//! Random-mutation fuzzing on stable Rust, for machines without cargo-fuzz:
//! `stable_fuzz TARGET SECONDS [SEED]`. Starts from `corpus/TARGET`, mutates
//! (no coverage feedback), keeps a sample of mutants to drift further, and
//! saves any input that panics to `artifacts/TARGET/`.

use std::time::{Duration, Instant};

use switchyard_fuzz::{corpus, mutate, run, Rng};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "request_head".into());
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    // A panic is a finding, not noise: keep the hook quiet and count it.
    std::panic::set_hook(Box::new(|_| {}));
    let mut pool = corpus(&target);
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let seeds = pool.len();
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut input = pool[rng.below(pool.len())].clone();
            let other = pool[rng.below(pool.len())].clone();
            mutate(&mut rng, &mut input, &other);
            execs += 1;
            let outcome = std::panic::catch_unwind(|| run(&target, &input));
            if outcome.is_err() {
                crashes += 1;
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("artifacts")
                    .join(&target);
                let _ = std::fs::create_dir_all(&dir);
                let name = format!("crash-{:016x}", fnv(&input));
                let _ = std::fs::write(dir.join(&name), &input);
                eprintln!("{target}: crash saved as artifacts/{target}/{name}");
            } else if rng.below(500) == 0 && pool.len() < seeds + 2000 {
                pool.push(input);
            }
        }
    }
    println!(
        "{target}: {seconds} s, {execs} execs ({} /s), pool {} (seeds {seeds}), crashes {crashes}",
        execs / seconds.max(1),
        pool.len()
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
