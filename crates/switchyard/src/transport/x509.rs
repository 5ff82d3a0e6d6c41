//! Just enough X.509 reading for what webpki refuses and OpenSSL accepts:
//! version 1 certificates (what `openssl req -x509` makes without an
//! extensions section, nginx's test certificates among them) and the
//! commonName a certificate without DNS subjectAltNames is matched by.
//! Only fields are read here; signatures are checked by webpki's code.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

/// One DER element: its tag, its content, and the bytes after it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// One element with its header: the whole encoding, and the bytes after.
fn whole(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, _, rest) = element(input)?;
    Some((&input[..input.len() - rest.len()], rest))
}

/// The fields of a certificate's TBSCertificate that are read here.
#[derive(Debug)]
pub struct Fields<'a> {
    /// Whether the certificate says it is version 3.
    pub version3: bool,
    /// The issuer Name's content.
    pub issuer: &'a [u8],
    /// The subject Name's content.
    pub subject: &'a [u8],
    /// notBefore and notAfter, in seconds since the epoch.
    pub validity: (u64, u64),
    /// The SubjectPublicKeyInfo, whole.
    pub spki: &'a [u8],
}

/// Reads a certificate's fields; `None` if it is not one.
pub fn fields(cert: &[u8]) -> Option<Fields<'_>> {
    let (0x30, cert, _) = element(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let mut version3 = false;
    if rest.first() == Some(&0xa0) {
        let (_, version, after) = element(rest)?;
        let (_, v, _) = element(version)?;
        version3 = v == [2];
        rest = after;
    }
    let (_, _serial, rest) = element(rest)?;
    let (_, _algorithm, rest) = element(rest)?;
    let (0x30, issuer, rest) = element(rest)? else {
        return None;
    };
    let (0x30, validity, rest) = element(rest)? else {
        return None;
    };
    let (0x30, subject, rest) = element(rest)? else {
        return None;
    };
    let (spki, _) = whole(rest)?;
    let (t1, before, after) = element(validity)?;
    let (t2, until, _) = element(after)?;
    Some(Fields {
        version3,
        issuer,
        subject,
        validity: (time(t1, before)?, time(t2, until)?),
        spki,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: u64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2)?.parse::<u64>().ok();
    let (month, day, hour, minute, second) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), from 1970.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146097 + doe).checked_sub(719468)?;
    Some(days * 86400 + hour * 3600 + minute * 60 + second)
}

/// The commonName values of a Name's content, in order.
pub fn common_names(name: &[u8]) -> Vec<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut out = Vec::new();
    let mut rdns = name;
    while let Some((_, set, rest)) = element(rdns) {
        rdns = rest;
        let mut attrs = set;
        while let Some((_, attr, rest)) = element(attrs) {
            attrs = rest;
            let Some((0x06, oid, value)) = element(attr) else {
                continue;
            };
            if oid != CN {
                continue;
            }
            if let Some((0x0c | 0x13 | 0x16 | 0x14, text, _)) = element(value) {
                out.push(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    out
}

/// Whether `pattern` (a certificate's name, `*.` allowed as the whole
/// leftmost label) matches the host `name`, as OpenSSL's X509_check_host.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return match name.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    pattern.eq_ignore_ascii_case(name)
}

/// A handshake signature by the key of `cert`: webpki's check, and for a
/// certificate webpki cannot read (X.509 v1), the same check on its key.
pub fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let first = if tls13 {
        verify_tls13_signature(message, cert, dss, algs)
    } else {
        verify_tls12_signature(message, cert, dss, algs)
    };
    let Err(rustls::Error::InvalidCertificate(_)) = &first else {
        return first;
    };
    let Some(f) = fields(cert.as_ref()).filter(|f| !f.version3) else {
        return first;
    };
    let spki = SubjectPublicKeyInfoDer::from(f.spki);
    if tls13 {
        return rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algs);
    }
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
    let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| bad())?;
    let candidates = algs
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, a)| *a)
        .ok_or_else(bad)?;
    if candidates
        .iter()
        .any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok())
    {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"000301000000Z"), Some(951868800));
        assert_eq!(time(0x18, b"20380119031408Z"), Some(2147483648));
        assert_eq!(time(0x17, b"701301000000Z"), None);
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.example.com", "foo.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(name_matches("Example.COM", "example.com"));
        assert!(!name_matches("example.com", "other.com"));
    }

    #[test]
    fn an_rcgen_certificate_reads_back() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cn.test");
        let cert = params.self_signed(&key).unwrap();
        let f = fields(cert.der()).unwrap();
        assert!(f.version3);
        assert_eq!(f.issuer, f.subject);
        assert_eq!(common_names(f.subject), ["cn.test"]);
        assert!(f.validity.0 < f.validity.1);
        assert!(fields(b"\x30\x03\x02\x01").is_none());
    }
}
