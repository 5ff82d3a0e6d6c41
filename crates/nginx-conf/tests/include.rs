//! `include` expansion, file errors and the `-T` dump, on real files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_conf::{parse_file, parse_str, Config, Directive, Error, Source};
use tempfile::TempDir;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

fn ok(path: &Path) -> Config {
    match parse_file(path) {
        Ok(config) => config,
        Err(err) => panic!("{} failed: {err}", path.display()),
    }
}

fn err(path: &Path) -> Error {
    match parse_file(path) {
        Ok(config) => panic!("{} parsed: {config:?}", path.display()),
        Err(err) => err,
    }
}

/// `(name, first arg, file name, line)` for each directive, depth first.
fn flat(directives: &[Directive]) -> Vec<(String, String, String, usize)> {
    let mut out = Vec::new();
    for d in directives {
        let file = match &d.position.source {
            Source::File(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
            Source::CommandLine => "-g".to_string(),
        };
        let arg = d.args.first().map(|a| a.value.clone()).unwrap_or_default();
        out.push((d.name.clone(), arg, file, d.position.line));
        if let Some(block) = &d.block {
            out.extend(flat(block));
        }
    }
    out
}

fn row(name: &str, arg: &str, file: &str, line: usize) -> (String, String, String, usize) {
    (name.into(), arg.into(), file.into(), line)
}

#[test]
fn missing_main_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nginx.conf");
    let e = err(&path);
    let message = format!(
        "open() \"{}\" failed (2: No such file or directory)",
        path.display()
    );
    assert_eq!(
        e,
        Error::Io {
            message: message.clone(),
            position: None
        }
    );
    assert_eq!(e.to_string(), message);
}

#[test]
fn include_expands_in_place_keeping_positions() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "mime.types", "types {\n  text/html html;\n}\n");
    let main = write(
        dir.path(),
        "nginx.conf",
        "a 1;\nhttp {\n  include mime.types;\n  b 2;\n}\ninclude mime.types;\n",
    );
    let config = ok(&main);
    assert_eq!(
        flat(&config.directives),
        [
            row("a", "1", "nginx.conf", 1),
            row("http", "", "nginx.conf", 2),
            row("types", "", "mime.types", 1),
            row("text/html", "html", "mime.types", 2),
            row("b", "2", "nginx.conf", 4),
            row("types", "", "mime.types", 1),
            row("text/html", "html", "mime.types", 2),
        ]
    );
    // Each file is recorded once, in the order first read.
    let files: Vec<&Path> = config.files.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(files, [main.as_path(), &dir.path().join("mime.types")]);
    assert_eq!(
        config.dump(),
        format!(
            "# configuration file {}:\n{}\n# configuration file {}:\n{}\n",
            main.display(),
            fs::read_to_string(&main).unwrap(),
            dir.path().join("mime.types").display(),
            "types {\n  text/html html;\n}\n",
        )
    );
}

#[test]
fn relative_paths_resolve_against_the_main_files_folder() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "snippets/common.conf", "common on;\n");
    // A file in conf.d/ includes "snippets/..." which nginx looks up next
    // to the main file, not next to conf.d/site.conf.
    write(
        dir.path(),
        "conf.d/site.conf",
        "site;\ninclude snippets/common.conf;\n",
    );
    write(dir.path(), "conf.d/snippets/common.conf", "wrong;\n");
    let main = write(dir.path(), "nginx.conf", "include conf.d/site.conf;\n");
    let config = ok(&main);
    assert_eq!(
        flat(&config.directives),
        [
            row("site", "", "site.conf", 1),
            row("common", "on", "common.conf", 1),
        ]
    );
    assert_eq!(
        config.files[2].path,
        dir.path().join("snippets/common.conf")
    );
}

#[test]
fn absolute_include_paths() {
    let dir = TempDir::new().unwrap();
    let other = TempDir::new().unwrap();
    let inc = write(other.path(), "x.conf", "x;\n");
    let main = write(
        dir.path(),
        "nginx.conf",
        &format!("include {};\n", inc.display()),
    );
    assert_eq!(flat(&ok(&main).directives), [row("x", "", "x.conf", 1)]);
}

#[test]
fn glob_includes_are_sorted_and_may_match_nothing() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "conf.d/b.conf", "b;\n");
    write(dir.path(), "conf.d/a.conf", "a;\n");
    write(dir.path(), "conf.d/c.conf", "c;\n");
    write(dir.path(), "conf.d/.hidden.conf", "hidden;\n");
    write(dir.path(), "conf.d/d.txt", "txt;\n");
    let main = write(
        dir.path(),
        "nginx.conf",
        "include conf.d/*.conf;\ninclude none/*.conf;\ninclude conf.d/[ab].conf;\ninclude conf.d/?.txt;\n",
    );
    let config = ok(&main);
    let got: Vec<String> = config.directives.iter().map(|d| d.name.clone()).collect();
    assert_eq!(got, ["a", "b", "c", "a", "b", "txt"]);
    assert_eq!(config.files.len(), 5);
}

#[test]
fn missing_include_reports_the_including_line() {
    let dir = TempDir::new().unwrap();
    let main = write(
        dir.path(),
        "nginx.conf",
        "a;\n\ninclude\n missing.conf\n;\n",
    );
    let e = err(&main);
    assert_eq!(
        e.to_string(),
        format!(
            "open() \"{}\" failed (2: No such file or directory) in {}:5",
            dir.path().join("missing.conf").display(),
            main.display()
        )
    );
    assert!(matches!(
        e,
        Error::Io {
            position: Some(_),
            ..
        }
    ));

    // From a nested include, the position is that file's.
    write(dir.path(), "sub.conf", "x;\ninclude gone.conf;\n");
    let main = write(dir.path(), "nginx.conf", "include sub.conf;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "open() \"{}\" failed (2: No such file or directory) in {}:2",
            dir.path().join("gone.conf").display(),
            dir.path().join("sub.conf").display()
        )
    );
}

#[test]
fn errors_inside_included_files_name_that_file() {
    let dir = TempDir::new().unwrap();
    let inc = write(dir.path(), "inc.conf", "a;\nb c\n");
    let main = write(dir.path(), "nginx.conf", "http {\n include inc.conf;\n}\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "unexpected end of file, expecting \";\" or \"}}\" in {}:3",
            inc.display()
        )
    );
}

#[test]
fn each_file_must_balance_its_braces() {
    let dir = TempDir::new().unwrap();
    let close = write(dir.path(), "close.conf", "a;\n}\n");
    let main = write(dir.path(), "nginx.conf", "http {\ninclude close.conf;\n");
    assert_eq!(
        err(&main).to_string(),
        format!("unexpected \"}}\" in {}:2", close.display())
    );
    let open = write(dir.path(), "open.conf", "server {\n");
    let main = write(
        dir.path(),
        "nginx.conf",
        "http {\ninclude open.conf;\n}\n}\n",
    );
    assert_eq!(
        err(&main).to_string(),
        format!(
            "unexpected end of file, expecting \"}}\" in {}:2",
            open.display()
        )
    );
}

#[test]
fn include_argument_count() {
    let dir = TempDir::new().unwrap();
    let main = write(dir.path(), "nginx.conf", "a;\ninclude a.conf b.conf;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "invalid number of arguments in \"include\" directive in {}:2",
            main.display()
        )
    );
    let main = write(dir.path(), "nginx.conf", "include;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "invalid number of arguments in \"include\" directive in {}:1",
            main.display()
        )
    );
}

#[test]
fn recursive_includes_are_refused() {
    let dir = TempDir::new().unwrap();
    let main = write(dir.path(), "nginx.conf", "a;\ninclude nginx.conf;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "recursive include of \"{}\" in {}:2",
            main.display(),
            main.display()
        )
    );
    let one = write(dir.path(), "one.conf", "include two.conf;\n");
    let two = write(dir.path(), "two.conf", "\ninclude one.conf;\n");
    let main = write(dir.path(), "nginx.conf", "include one.conf;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "recursive include of \"{}\" in {}:2",
            one.display(),
            two.display()
        )
    );
    // Including the same file twice, one after the other, is fine.
    write(dir.path(), "x.conf", "x;\n");
    let main = write(
        dir.path(),
        "nginx.conf",
        "include x.conf;\ninclude x.conf;\n",
    );
    assert_eq!(ok(&main).directives.len(), 2);
}

#[test]
fn including_a_directory_fails_cleanly() {
    let dir = TempDir::new().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let main = write(dir.path(), "nginx.conf", "include sub;\n");
    assert_eq!(
        err(&main).to_string(),
        format!(
            "pread() \"{}\" failed (21: Is a directory)",
            dir.path().join("sub").display()
        )
    );
}

#[test]
fn parse_str_resolves_includes_against_the_base() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "x.conf", "x 1;\n");
    let config = parse_str("include x.conf;", Source::CommandLine, dir.path()).unwrap();
    assert_eq!(flat(&config.directives), [row("x", "1", "x.conf", 1)]);
    assert_eq!(config.files.len(), 1);

    let source = Source::File(Arc::new(dir.path().join("virtual.conf")));
    let config = parse_str("a;\ninclude *.conf;\n", source, dir.path()).unwrap();
    assert_eq!(
        flat(&config.directives),
        [row("a", "", "virtual.conf", 1), row("x", "1", "x.conf", 1)]
    );
    assert_eq!(config.files[0].text, "a;\ninclude *.conf;\n");

    let e = parse_str("include nope.conf;", Source::CommandLine, dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "open() \"{}\" failed (2: No such file or directory) in command line",
            dir.path().join("nope.conf").display()
        )
    );
}

#[test]
fn include_nesting_is_bounded() {
    let dir = TempDir::new().unwrap();
    // A chain of distinct files, each including the next.
    for i in 0..60 {
        write(
            dir.path(),
            &format!("f{i}.conf"),
            &format!("include f{}.conf;\n", i + 1),
        );
    }
    write(dir.path(), "f60.conf", "end;\n");
    let main = write(dir.path(), "nginx.conf", "include f0.conf;\n");
    let text = err(&main).to_string();
    assert!(
        text.starts_with("includes nested too deeply (more than 50 levels) in "),
        "{text}"
    );
}
