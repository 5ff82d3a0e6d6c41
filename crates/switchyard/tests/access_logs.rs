//! `access_log` destinations: buffered and gzipped files, paths with
//! variables, `open_log_file_cache`, and their configuration errors.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{free_port, get, Balancer};

fn read(lb: &Balancer, name: &str) -> Vec<u8> {
    std::fs::read(lb.dir.path().join("logs").join(name)).unwrap_or_default()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip file");
    text
}

#[test]
fn gzip_with_flush_writes_compressed_lines_without_more_traffic() {
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format short $uri;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 204; }}\n\
               access_log logs/gz.log short gzip flush=100ms; }}"
        ),
        &[port],
    );
    assert_eq!(get(port, "/one").status, 204);
    assert_eq!(get(port, "/two").status, 204);
    support::wait_until(Duration::from_secs(10), "the flushed gzip member", || {
        !read(&lb, "gz.log").is_empty()
    });
    let bytes = read(&lb, "gz.log");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "not gzip");
    assert_eq!(gunzip(&bytes), "/one\n/two\n");
}

#[test]
fn a_buffer_holds_lines_until_the_process_stops() {
    let port = free_port();
    let mut lb = Balancer::start_http(
        &format!(
            "log_format short $uri;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 204; }}\n\
               access_log logs/buffered.log short buffer=64k;\n\
               access_log logs/plain.log short; }}"
        ),
        &[port],
    );
    assert_eq!(get(port, "/a").status, 204);
    // The unbuffered log has the line as soon as it is written; the
    // buffered one, written by the same request, must not.
    support::wait_until(Duration::from_secs(5), "the unbuffered line", || {
        read(&lb, "plain.log") == b"/a\n"
    });
    assert_eq!(read(&lb, "buffered.log"), b"");
    lb.signal(libc::SIGQUIT);
    assert_eq!(lb.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(read(&lb, "buffered.log"), b"/a\n");
}

#[test]
fn a_path_with_variables_opens_a_file_per_value() {
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format short $uri;\n\
             server {{ listen 127.0.0.1:{port}; root html; location / {{ return 204; }}\n\
               location /cached/ {{ return 204; open_log_file_cache max=2;\n\
                 access_log logs/cached_$arg_who.log short; }}\n\
               access_log logs/by_$arg_who.log short; }}"
        ),
        &[port],
    );
    std::fs::create_dir_all(lb.dir.path().join("html")).unwrap();
    assert_eq!(get(port, "/x?who=ann").status, 204);
    assert_eq!(get(port, "/y?who=bob").status, 204);
    assert_eq!(get(port, "/cached/z?who=cy").status, 204);
    support::wait_until(Duration::from_secs(5), "three files", || {
        read(&lb, "by_ann.log") == b"/x\n"
            && read(&lb, "by_bob.log") == b"/y\n"
            && read(&lb, "cached_cy.log") == b"/cached/z\n"
    });
}

#[test]
fn no_root_directory_no_line() {
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format short $uri;\n\
             server {{ listen 127.0.0.1:{port}; root nowhere; location / {{ return 204; }}\n\
               access_log logs/by_$arg_who.log short; }}"
        ),
        &[port],
    );
    assert_eq!(get(port, "/x?who=ann").status, 204);
    support::wait_until(Duration::from_secs(5), "the root test's error", || {
        lb.error_log_text().contains("existence failed")
    });
    let root = lb.dir.path().join("nowhere");
    assert!(
        lb.error_log_text().contains(&format!(
            "testing \"{}\" existence failed (2: No such file or directory)",
            root.display()
        )),
        "{}",
        lb.error_log_text()
    );
    assert!(read(&lb, "by_ann.log").is_empty());
}

fn check(http_body: &str) -> support::ConfCheck {
    support::check_conf(&format!("events {{}}\nhttp {{\n{http_body}\n}}\n"))
}

#[test]
fn bad_buffering_fails_the_load_with_nginx_words() {
    for (body, message, line) in [
        (
            "access_log logs/a.log combined flush=1s;",
            "no buffer is defined for access_log \"logs/a.log\"",
            3,
        ),
        (
            "access_log logs/a.log combined buffer=0;",
            "invalid buffer size \"0\"",
            3,
        ),
        (
            "access_log logs/a.log combined gzip=10;",
            "invalid compression level \"10\"",
            3,
        ),
        (
            "access_log logs/a.log combined buffer=4k;\naccess_log logs/a.log combined buffer=8k;",
            "access_log \"logs/a.log\" already defined with conflicting parameters",
            4,
        ),
        (
            "access_log logs/$host.log combined buffer=4k;",
            "buffered logs cannot have variables in name",
            3,
        ),
        (
            "open_log_file_cache inactive=10s;",
            "\"open_log_file_cache\" must have \"max\" parameter",
            3,
        ),
        (
            "open_log_file_cache max=10 size=1;",
            "invalid \"open_log_file_cache\" parameter \"size=1\"",
            3,
        ),
    ] {
        check(body).assert_error(message, line);
    }
    // An unbuffered log of a buffered file shares its buffer: no conflict.
    let shared = check("access_log logs/a.log combined buffer=4k;\naccess_log logs/a.log;");
    assert_eq!(shared.code, Some(0), "{}", shared.stderr);
}
