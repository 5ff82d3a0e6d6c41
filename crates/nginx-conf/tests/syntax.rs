//! Tokenizing and syntax errors, checked against nginx's wording and lines.

use std::path::PathBuf;
use std::sync::Arc;

use nginx_conf::{parse_bytes, Config, Directive, Error, Source, MAX_BLOCK_DEPTH};

const FILE: &str = "/etc/nginx/nginx.conf";

fn file() -> Source {
    Source::File(Arc::new(PathBuf::from(FILE)))
}

fn parse(text: &str) -> Config {
    match parse_bytes(text.as_bytes(), file()) {
        Ok(config) => config,
        Err(err) => panic!("{text:?} failed: {err}"),
    }
}

fn err(text: &str) -> String {
    err_bytes(text.as_bytes())
}

fn err_bytes(data: &[u8]) -> String {
    match parse_bytes(data, file()) {
        Ok(config) => panic!("{data:?} parsed: {config:?}"),
        Err(err) => err.to_string(),
    }
}

fn cmdline_err(text: &str) -> String {
    match parse_bytes(text.as_bytes(), Source::CommandLine) {
        Ok(config) => panic!("{text:?} parsed: {config:?}"),
        Err(err) => err.to_string(),
    }
}

/// The first directive's arguments, as strings.
fn args(text: &str) -> Vec<String> {
    let config = parse(text);
    let first = &config.directives[0];
    first.args.iter().map(|a| a.value.clone()).collect()
}

fn names(directives: &[Directive]) -> Vec<&str> {
    directives.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn directives_blocks_and_args() {
    let config = parse("worker_processes 2;\nhttp {\n  server { listen 80; }\n}\n");
    assert_eq!(names(&config.directives), ["worker_processes", "http"]);
    assert_eq!(config.directives[0].args[0].as_str(), "2");
    assert!(config.directives[0].block.is_none());
    let http = config.directives[1].block.as_deref().unwrap();
    assert_eq!(names(http), ["server"]);
    let server = http[0].block.as_deref().unwrap();
    assert_eq!(server[0].name, "listen");
    assert_eq!(server[0].args[0].value, "80");
    assert_eq!(server[0].position.line, 3);
}

#[test]
fn empty_block_and_empty_input() {
    assert!(parse("").directives.is_empty());
    assert!(parse("  \n\t\r\n# only a comment").directives.is_empty());
    let config = parse("events {}");
    assert_eq!(config.directives[0].block.as_deref(), Some(&[][..]));
}

#[test]
fn position_is_line_of_terminator() {
    let config = parse("a\n b\n c\n ;\nhttp\n\n{\n}\n");
    assert_eq!(config.directives[0].position.line, 4);
    assert_eq!(
        config.directives[0].position.to_string(),
        format!("{FILE}:4")
    );
    assert_eq!(config.directives[1].position.line, 7);
}

#[test]
fn whitespace_kinds_separate_tokens() {
    assert_eq!(args("a b\tc\r\nd\ne;"), ["b", "c", "d", "e"]);
    // CR alone is whitespace but not a new line.
    let config = parse("a\rb;\nc;");
    assert_eq!(config.directives[0].position.line, 1);
    assert_eq!(config.directives[1].position.line, 2);
}

#[test]
fn comments_only_at_token_start() {
    assert_eq!(args("a foo#bar;"), ["foo#bar"]);
    assert_eq!(args("a b; # c;\n"), ["b"]);
    assert_eq!(args("# x;\na b #c ;\n d;"), ["b", "d"]);
    assert_eq!(args("a \"#b\" '#c';"), ["#b", "#c"]);
    let config = parse("a;#b\nc {#\n}");
    assert_eq!(names(&config.directives), ["a", "c"]);
    // A comment runs to the end of the line, braces included.
    assert_eq!(
        err("a { # }\n"),
        format!("unexpected end of file, expecting \"}}\" in {FILE}:2")
    );
}

#[test]
fn quotes_and_escapes() {
    let config = parse(r#"a "x y" 'p q' plain "" '';"#);
    let d = &config.directives[0];
    let got: Vec<(&str, bool)> = d.args.iter().map(|a| (a.as_str(), a.quoted)).collect();
    assert_eq!(
        got,
        [
            ("x y", true),
            ("p q", true),
            ("plain", false),
            ("", true),
            ("", true)
        ]
    );
    assert_eq!(
        args(r#"a "q\"d" 'q\'s' "b\\s" "t\tr\rn\n" "\d\$";"#),
        ["q\"d", "q's", "b\\s", "t\tr\rn\n", "\\d\\$"]
    );
    // Quotes of the other kind need no escape.
    assert_eq!(args(r#"a "it's" 'say "hi"';"#), ["it's", "say \"hi\""]);
    // Newlines inside quotes are kept and counted.
    let config = parse("a \"x\ny\";\nb;");
    assert_eq!(config.directives[0].args[0].value, "x\ny");
    assert_eq!(config.directives[0].position.line, 2);
    assert_eq!(config.directives[1].position.line, 3);
}

#[test]
fn backslash_in_unquoted_words() {
    assert_eq!(args(r"a x\ y;"), [r"x\ y"]);
    assert_eq!(args(r"a x\;y;"), [r"x\;y"]);
    assert_eq!(args(r#"a x\"y \"z \\w \n;"#), ["x\"y", "\"z", "\\w", "\n"]);
    assert_eq!(args(r"a \{;"), [r"\{"]);
}

#[test]
fn after_closing_quote() {
    assert_eq!(err("a \"b\"c;"), format!("unexpected \"c\" in {FILE}:1"));
    assert_eq!(
        err("a\n'b'\"c\";"),
        format!("unexpected \"\"\" in {FILE}:2")
    );
    assert_eq!(err("a \"b\"#c;"), format!("unexpected \"#\" in {FILE}:1"));
    assert_eq!(err("a \"b\"}"), format!("unexpected \"}}\" in {FILE}:1"));
    assert_eq!(args("a \"b\";"), ["b"]);
    let config = parse("a \"b\"{ c; }");
    assert_eq!(
        config.directives[0].block.as_deref().map(names),
        Some(vec!["c"])
    );
    // `)` may follow a quote and starts a word of its own.
    let config = parse("if ($a = \"b\") { return 1; }");
    let d = &config.directives[0];
    assert_eq!(d.name, "if");
    let got: Vec<&str> = d.args.iter().map(|a| a.as_str()).collect();
    assert_eq!(got, ["($a", "=", "b", ")"]);
    assert_eq!(args("a \"b\"),c;"), ["b", "),c"]);
}

#[test]
fn braces_inside_words() {
    assert_eq!(args("a x} y};"), ["x}", "y}"]);
    assert_eq!(args("set $a ${b}c;"), ["$a", "${b}c"]);
    assert_eq!(args("a ${x};"), ["${x}"]);
    assert_eq!(args("a $${{x;"), ["$${{x"]);
    assert_eq!(args("a x${y}z \"${q}\";"), ["x${y}z", "${q}"]);
    // `{` not right after `$` ends the word and opens a block.
    let config = parse("a x{ b; }");
    assert_eq!(config.directives[0].args[0].value, "x");
    assert!(config.directives[0].block.is_some());
    let config = parse("a $x{ b; }");
    assert_eq!(config.directives[0].args.len(), 1);
    assert_eq!(config.directives[0].args[0].value, "$x");
}

#[test]
fn unexpected_terminators() {
    assert_eq!(err(";"), format!("unexpected \";\" in {FILE}:1"));
    assert_eq!(err("a;\n\n;"), format!("unexpected \";\" in {FILE}:3"));
    assert_eq!(err("a;\n{"), format!("unexpected \"{{\" in {FILE}:2"));
    assert_eq!(err("a { ; }"), format!("unexpected \";\" in {FILE}:1"));
    assert_eq!(err("a b\n}"), format!("unexpected \"}}\" in {FILE}:2"));
    assert_eq!(err("a;\n}\n"), format!("unexpected \"}}\" in {FILE}:2"));
    assert_eq!(err("a { }\n\n}"), format!("unexpected \"}}\" in {FILE}:3"));
}

#[test]
fn unexpected_end_of_file() {
    let expecting = "unexpected end of file, expecting \";\" or \"}\"";
    assert_eq!(err("a b"), format!("{expecting} in {FILE}:1"));
    assert_eq!(err("a b\n\n"), format!("{expecting} in {FILE}:3"));
    assert_eq!(err("a;\nb"), format!("{expecting} in {FILE}:2"));
    assert_eq!(err("a \"b"), format!("{expecting} in {FILE}:1"));
    assert_eq!(err("a 'b\nc"), format!("{expecting} in {FILE}:2"));
    assert_eq!(err("a \"b\""), format!("{expecting} in {FILE}:1"));
    assert_eq!(err("a \\"), format!("{expecting} in {FILE}:1"));
    assert_eq!(
        err("http {\n  a;\n"),
        format!("unexpected end of file, expecting \"}}\" in {FILE}:3")
    );
    assert_eq!(
        err("a { b { c; }"),
        format!("unexpected end of file, expecting \"}}\" in {FILE}:1")
    );
}

#[test]
fn command_line() {
    let config = match parse_bytes(b"daemon off; worker_processes 2;", Source::CommandLine) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(names(&config.directives), ["daemon", "worker_processes"]);
    assert_eq!(config.directives[0].position.source, Source::CommandLine);
    assert!(config.files.is_empty());
    assert_eq!(
        cmdline_err("daemon off"),
        "unexpected end of parameter, expecting \";\" in command line"
    );
    assert_eq!(
        cmdline_err("events { }"),
        "block directives are not supported in -g option in command line"
    );
    assert_eq!(cmdline_err("}"), "unexpected \"}\" in command line");
    assert_eq!(cmdline_err(";"), "unexpected \";\" in command line");
    // The -g text is not read through the 4096-byte buffer.
    let long = format!("a {};", "x".repeat(10_000));
    assert!(parse_bytes(long.as_bytes(), Source::CommandLine).is_ok());
}

#[test]
fn too_long_parameter() {
    // A word filling nginx's whole 4096-byte buffer is refused ...
    assert_eq!(
        err(&format!("{};", "a".repeat(4096))),
        format!("too long parameter \"aaaaaaaaaa...\" started in {FILE}:1")
    );
    // ... one byte less still fits.
    assert_eq!(parse(&format!("{};", "a".repeat(4095))).directives.len(), 1);
    // The error names the line the word started on.
    assert_eq!(
        err(&format!("x;\n\nlong {}", "b\\\n".repeat(3000))),
        format!("too long parameter \"b\\\nb\\\nb\\\nb...\" started in {FILE}:3")
    );
    assert_eq!(
        err(&format!("a;\nb \"{}\";", "x\n".repeat(3000))),
        format!("too long parameter, probably missing terminating \"\"\" character in {FILE}:2")
    );
    assert_eq!(
        err(&format!("b '{}", "x".repeat(5000))),
        format!("too long parameter, probably missing terminating \"'\" character in {FILE}:1")
    );
    // nginx counts a comment (from its `#`) the same way.
    assert_eq!(
        err(&format!("a;\n#{}\nb;", "c".repeat(5000))),
        format!("too long parameter \"#ccccccccc...\" started in {FILE}:2")
    );
}

#[test]
fn long_files_of_short_words_are_fine() {
    let text = "server_name a.example.com b.example.com;\n".repeat(1000);
    let config = parse(&format!("http {{\n{text}}}\n"));
    let http = config.directives[0].block.as_deref().unwrap();
    assert_eq!(http.len(), 1000);
    assert_eq!(http[999].position.line, 1001);
    assert_eq!(config.directives[0].position.line, 1);
}

#[test]
fn invalid_utf8_is_replaced() {
    let config = match parse_bytes(b"a \xff\xfe \"\xc3\xa9\";", file()) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    let got: Vec<&str> = config.directives[0]
        .args
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(got, ["\u{fffd}\u{fffd}", "é"]);
    assert_eq!(config.files[0].text, "a \u{fffd}\u{fffd} \"é\";");
    assert_eq!(
        err_bytes(b"a \"b\"\xff;"),
        format!("unexpected \"\u{fffd}\" in {FILE}:1")
    );
    assert_eq!(err("a \"b\"é;"), format!("unexpected \"é\" in {FILE}:1"));
}

#[test]
fn nesting_depth_is_bounded() {
    let ok = format!(
        "{}{}",
        "a {\n".repeat(MAX_BLOCK_DEPTH),
        "}".repeat(MAX_BLOCK_DEPTH)
    );
    assert_eq!(parse(&ok).directives.len(), 1);
    let deep = format!(
        "{}{}",
        "a {\n".repeat(MAX_BLOCK_DEPTH + 1),
        "}".repeat(MAX_BLOCK_DEPTH + 1)
    );
    assert_eq!(
        err(&deep),
        format!("blocks nested too deeply (more than 100 levels) in {FILE}:101")
    );
    // Far deeper input must not overflow the stack.
    let hostile = "a{".repeat(1_000_000);
    assert!(parse_bytes(hostile.as_bytes(), file()).is_err());
}

#[test]
fn include_syntax_is_checked_without_expansion() {
    let config = parse("http { include mime.types; }");
    let http = config.directives[0].block.as_deref().unwrap();
    assert_eq!(http[0].name, "include");
    assert_eq!(http[0].args[0].value, "mime.types");
    assert_eq!(
        err("a;\ninclude a b;"),
        format!("invalid number of arguments in \"include\" directive in {FILE}:2")
    );
    assert_eq!(
        err("include;"),
        format!("invalid number of arguments in \"include\" directive in {FILE}:1")
    );
    assert_eq!(
        err("include a {}"),
        format!("directive \"include\" is not terminated by \";\" in {FILE}:1")
    );
}

#[test]
fn error_kinds() {
    match parse_bytes(b"}", file()) {
        Err(Error::Syntax { message, position }) => {
            assert_eq!(message, "unexpected \"}\"");
            assert_eq!(position.line, 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn records_the_file_for_dump() {
    let config = parse("a;\n");
    assert_eq!(config.files.len(), 1);
    assert_eq!(
        config.dump(),
        format!("# configuration file {FILE}:\na;\n\n")
    );
}
