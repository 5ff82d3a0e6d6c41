//! On stable: every target over its seed corpus, its regression inputs
//! (`regressions/TARGET/`, crashes found earlier) and a few thousand
//! deterministic mutants. A panic fails the test.

use switchyard_fuzz::{corpus, mutate, run, Rng, TARGETS};

fn regressions(name: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn targets_survive_corpus_and_mutants() {
    for name in TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "no seed corpus for {name}");
        for input in seeds.iter().chain(regressions(name).iter()) {
            run(name, input);
        }
        let mut rng = Rng::new(0x5eed ^ name.len() as u64);
        for _ in 0..5000 {
            let mut input = seeds[rng.below(seeds.len())].clone();
            let other = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &mut input, &other);
            run(name, &input);
        }
    }
}
