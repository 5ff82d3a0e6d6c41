//! OpenSSL cipher strings (`ssl_ciphers`) read against the cipher suites
//! rustls has.
//!
//! The string is evaluated as OpenSSL evaluates a cipher list: elements
//! separated by `:`, `,`, `;` or spaces; `!X` removes for good, `-X`
//! removes, `+X` moves to the end, `X` adds; `A+B` matches what both
//! match; `@STRENGTH` sorts by key length; `@SECLEVEL=n` is ignored. The
//! names and aliases are OpenSSL's, matched against the only TLSv1.2
//! suites rustls implements: ECDHE with RSA or ECDSA authentication and
//! AES-GCM or ChaCha20-Poly1305. Everything else OpenSSL knows (CBC, RSA
//! key exchange, DHE, CAMELLIA, ...) matches nothing here, so a list that
//! names only such suites selects nothing and is refused at load.
//!
//! As in OpenSSL, the string does not touch TLSv1.3 suites (OpenSSL sets
//! those with `Ciphersuites`, which nginx reaches only through
//! `ssl_conf_command`): every TLSv1.3 suite stays enabled.

use rustls::crypto::ring::cipher_suite as suites;
use rustls::SupportedCipherSuite;

/// One TLSv1.2 suite with the attributes OpenSSL's aliases test.
struct Suite {
    name: &'static str,
    standard: &'static str,
    suite: SupportedCipherSuite,
    ecdsa: bool,
    /// "AES128", "AES256" or "CHACHA20".
    enc: &'static str,
    bits: u32,
}

/// OpenSSL's default order of these suites.
fn table() -> [Suite; 6] {
    [
        Suite {
            name: "ECDHE-ECDSA-AES256-GCM-SHA384",
            standard: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            suite: suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ecdsa: true,
            enc: "AES256",
            bits: 256,
        },
        Suite {
            name: "ECDHE-RSA-AES256-GCM-SHA384",
            standard: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            suite: suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ecdsa: false,
            enc: "AES256",
            bits: 256,
        },
        Suite {
            name: "ECDHE-ECDSA-CHACHA20-POLY1305",
            standard: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            suite: suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ecdsa: true,
            enc: "CHACHA20",
            bits: 256,
        },
        Suite {
            name: "ECDHE-RSA-CHACHA20-POLY1305",
            standard: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            suite: suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ecdsa: false,
            enc: "CHACHA20",
            bits: 256,
        },
        Suite {
            name: "ECDHE-ECDSA-AES128-GCM-SHA256",
            standard: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            suite: suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ecdsa: true,
            enc: "AES128",
            bits: 128,
        },
        Suite {
            name: "ECDHE-RSA-AES128-GCM-SHA256",
            standard: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            suite: suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ecdsa: false,
            enc: "AES128",
            bits: 128,
        },
    ]
}

/// Whether the OpenSSL name or alias `word` covers `s`.
fn matches(word: &str, s: &Suite) -> bool {
    if word == s.name || word == s.standard {
        return true;
    }
    match word {
        "ALL" | "DEFAULT" | "HIGH" | "TLSv1.2" | "kECDHE" | "kEECDH" | "ECDHE" | "EECDH" => true,
        "aRSA" => !s.ecdsa,
        "aECDSA" | "ECDSA" => s.ecdsa,
        "AESGCM" | "AES" => s.enc != "CHACHA20",
        "AES128" | "AES256" | "CHACHA20" => s.enc == word,
        _ => false,
    }
}

/// The cipher string selects no suite rustls has.
#[derive(Debug, thiserror::Error)]
#[error(
    "ssl_ciphers \"{0}\" selects none of the TLSv1.2 cipher suites this build has \
     (ECDHE with RSA or ECDSA and AES-GCM or CHACHA20-POLY1305); other suites are not supported yet"
)]
pub struct NoCipherMatch(pub String);

/// The TLSv1.2 suites `list` selects, in its order, followed by every
/// TLSv1.3 suite (which the string does not govern, as in OpenSSL).
pub fn select(list: &str) -> Result<Vec<SupportedCipherSuite>, NoCipherMatch> {
    let table = table();
    // Positions into `table`, in list order; `killed` are out for good.
    let mut active: Vec<usize> = Vec::new();
    let mut killed = [false; 6];
    let mut strength_sort = false;
    for element in list.split([':', ',', ';', ' ']).filter(|e| !e.is_empty()) {
        if element == "@STRENGTH" {
            strength_sort = true;
            continue;
        }
        if element.starts_with('@') {
            continue;
        }
        let (op, body) = match element.as_bytes()[0] {
            b'!' | b'-' | b'+' => (element.as_bytes()[0], &element[1..]),
            _ => (b' ', element),
        };
        for (i, suite) in table.iter().enumerate() {
            if !body.split('+').all(|w| matches(w, suite)) {
                continue;
            }
            match op {
                b'!' => {
                    killed[i] = true;
                    active.retain(|&a| a != i);
                }
                b'-' => active.retain(|&a| a != i),
                b'+' => {
                    if let Some(at) = active.iter().position(|&a| a == i) {
                        active.remove(at);
                        active.push(i);
                    }
                }
                _ => {
                    if !killed[i] && !active.contains(&i) {
                        active.push(i);
                    }
                }
            }
        }
    }
    if strength_sort {
        // Stable: equal strengths keep their order, as OpenSSL's sort.
        active.sort_by_key(|&i| std::cmp::Reverse(table[i].bits));
    }
    if active.is_empty() {
        return Err(NoCipherMatch(list.to_string()));
    }
    let mut out: Vec<SupportedCipherSuite> = vec![
        suites::TLS13_AES_256_GCM_SHA384,
        suites::TLS13_CHACHA20_POLY1305_SHA256,
        suites::TLS13_AES_128_GCM_SHA256,
    ];
    out.extend(active.iter().map(|&i| table[i].suite));
    Ok(out)
}

/// OpenSSL's name of a suite, as `$ssl_cipher` shows it: the standard name
/// for TLSv1.3 (`TLS_AES_128_GCM_SHA256`), OpenSSL's own for TLSv1.2
/// (`ECDHE-RSA-AES128-GCM-SHA256`).
pub fn openssl_name(suite: SupportedCipherSuite) -> &'static str {
    let id = suite.suite();
    for s in table() {
        if s.suite.suite() == id {
            return s.name;
        }
    }
    // rustls names TLSv1.3 suites TLS13_*, OpenSSL by their RFC 8446 names.
    match id.as_str() {
        Some("TLS13_AES_128_GCM_SHA256") => "TLS_AES_128_GCM_SHA256",
        Some("TLS13_AES_256_GCM_SHA384") => "TLS_AES_256_GCM_SHA384",
        Some("TLS13_CHACHA20_POLY1305_SHA256") => "TLS_CHACHA20_POLY1305_SHA256",
        Some(other) => other,
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<&'static str> {
        select(list)
            .unwrap()
            .into_iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(openssl_name)
            .collect()
    }

    /// The orders below are what `openssl ciphers -tls1_2 -s` (OpenSSL
    /// 3.0) prints for the same strings, restricted to these suites.
    #[test]
    fn strings_select_as_openssl_does() {
        assert_eq!(
            names("HIGH:!aNULL:!MD5"),
            [
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
            ]
        );
        assert_eq!(
            names("ECDHE+AESGCM:!aECDSA"),
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-CHACHA20-POLY1305"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"]
        );
        assert_eq!(
            names("aRSA:+AES256:!CHACHA20"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
        );
        assert_eq!(
            names("AES128:CHACHA20:@STRENGTH")[0],
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
        // A later plain element cannot bring back what `!` removed.
        assert_eq!(names("!aRSA:ALL").len(), 3);
        // TLSv1.3 suites are always there.
        let all = select("aRSA").unwrap();
        assert_eq!(
            all.iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .count(),
            3
        );
    }

    #[test]
    fn suites_rustls_lacks_select_nothing() {
        for list in ["AES128-SHA", "DHE-RSA-AES256-SHA:kRSA", "SHA256", "eNULL"] {
            assert!(select(list).is_err(), "{list}");
        }
        assert!(select("AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256").is_ok());
    }

    #[test]
    fn names_follow_openssl() {
        assert_eq!(
            openssl_name(suites::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            openssl_name(suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
            "ECDHE-RSA-CHACHA20-POLY1305"
        );
    }
}
