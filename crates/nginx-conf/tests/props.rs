//! Properties: no input panics the parser; generated configurations parse
//! back to the tree they were written from; `-T` reproduces the file.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use nginx_conf::{parse_bytes, parse_file, parse_str, Config, Directive, Source};
use proptest::prelude::*;
use tempfile::TempDir;

fn file_source() -> Source {
    Source::File(Arc::new(PathBuf::from("/etc/nginx/nginx.conf")))
}

/// Text made of the characters the lexer treats specially, so that the
/// interesting paths get exercised far more than random bytes would.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = vec![
        "a",
        "bc",
        " ",
        "\n",
        "\t",
        "\r",
        ";",
        "{",
        "}",
        "\"",
        "'",
        "\\",
        "#",
        "$",
        "${",
        "(",
        ")",
        "é",
        "\u{fffd}",
        "include",
        "include *;",
        "x*",
        "\\n",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..120).prop_map(|v| v.concat())
}

/// Checks the invariants every successful parse must hold.
fn check(config: &Config) {
    fn walk(directives: &[Directive]) {
        for d in directives {
            assert!(d.position.line >= 1);
            if let Some(block) = &d.block {
                walk(block);
            }
        }
    }
    walk(&config.directives);
}

/// A generated directive: name, arguments (text, quoted), optional block.
#[derive(Debug, Clone)]
struct Gen {
    name: String,
    args: Vec<(String, bool)>,
    block: Option<Vec<Gen>>,
}

fn arg() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        "[a-z0-9/._:=-]{1,8}".prop_map(|s| (s, false)),
        "[a-z]{0,3}\\$[a-z_]{1,5}".prop_map(|s| (s, false)),
        "[a-z]{0,3}\\$\\{[a-z_]{1,5}\\}[a-z]{0,3}".prop_map(|s| (s, false)),
        any::<String>().prop_map(|s| (s.replace('\0', ""), true)),
        "[ a-z;{}#'\"\\\\\n\t$]{0,12}".prop_map(|s| (s, true)),
    ]
}

fn tree() -> impl Strategy<Value = Vec<Gen>> {
    let leaf = ("[a-z_]{1,6}", prop::collection::vec(arg(), 0..4)).prop_map(|(name, args)| Gen {
        name,
        args,
        block: None,
    });
    let node = leaf.prop_recursive(4, 40, 5, |inner| {
        (
            "[a-z_]{1,6}",
            prop::collection::vec(arg(), 0..3),
            prop::collection::vec(inner, 0..5),
        )
            .prop_map(|(name, args, block)| Gen {
                name,
                args,
                block: Some(block),
            })
    });
    prop::collection::vec(node, 0..8)
}

/// Writes `gens` as nginx text, returning for each directive (depth first)
/// the line its `;` or `{` lands on.
fn render(gens: &[Gen], indent: usize, out: &mut String, lines: &mut Vec<usize>) {
    for g in gens {
        out.push_str(&"  ".repeat(indent));
        out.push_str(&g.name);
        for (text, quoted) in &g.args {
            out.push(' ');
            if *quoted {
                out.push('"');
                out.push_str(&text.replace('\\', "\\\\").replace('"', "\\\""));
                out.push('"');
            } else {
                out.push_str(text);
            }
        }
        lines.push(1 + out.matches('\n').count());
        match &g.block {
            None => out.push_str(";  # done\n"),
            Some(block) => {
                out.push_str(" {\n");
                render(block, indent + 1, out, lines);
                out.push_str(&"  ".repeat(indent));
                out.push_str("}\n");
            }
        }
    }
}

fn compare(gens: &[Gen], got: &[Directive], lines: &mut std::slice::Iter<'_, usize>) {
    assert_eq!(gens.len(), got.len());
    for (g, d) in gens.iter().zip(got) {
        assert_eq!(g.name, d.name);
        let args: Vec<(String, bool)> =
            d.args.iter().map(|a| (a.value.clone(), a.quoted)).collect();
        assert_eq!(g.args, args);
        assert_eq!(lines.next(), Some(&d.position.line), "line of {}", g.name);
        match (&g.block, &d.block) {
            (None, None) => {}
            (Some(gb), Some(db)) => compare(gb, db, lines),
            _ => panic!("block mismatch for {}", g.name),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        if let Ok(config) = parse_bytes(&data, file_source()) {
            check(&config);
        }
        if let Ok(config) = parse_bytes(&data, Source::CommandLine) {
            check(&config);
        }
    }

    #[test]
    fn tricky_text_never_panics(text in tricky_text()) {
        for source in [file_source(), Source::CommandLine] {
            if let Ok(config) = parse_bytes(text.as_bytes(), source) {
                check(&config);
            }
        }
    }

    #[test]
    fn tricky_text_with_includes_never_panics(text in tricky_text()) {
        // Includes resolve inside an empty folder (plus the file itself).
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("nginx.conf");
        fs::write(&path, &text).unwrap();
        if let Ok(config) = parse_file(&path) {
            check(&config);
            prop_assert_eq!(
                config.dump(),
                format!("# configuration file {}:\n{}\n", path.display(), text)
            );
        }
        let _ = parse_str(&text, Source::CommandLine, dir.path());
    }

    #[test]
    fn generated_configs_round_trip(gens in tree()) {
        let mut text = String::from("# generated\n");
        let mut lines = Vec::new();
        render(&gens, 0, &mut text, &mut lines);
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("nginx.conf");
        fs::write(&path, &text).unwrap();
        let config = match parse_file(&path) {
            Ok(config) => config,
            Err(err) => panic!("{err}\n{text}"),
        };
        compare(&gens, &config.directives, &mut lines.iter());
        prop_assert_eq!(config.files.len(), 1);
        prop_assert_eq!(
            config.dump(),
            format!("# configuration file {}:\n{}\n", path.display(), text)
        );
    }
}
