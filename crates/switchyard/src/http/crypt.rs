//! nginx's `ngx_crypt` for password files: `$apr1$` (Apache's MD5-crypt),
//! `{PLAIN}`, `{SSHA}` and `{SHA}` of its own, crypt(3) for the rest. The
//! crypt(3) part is pwhash's pure-Rust work-alike (MD5-crypt `$1$`,
//! SHA-crypt `$5$`/`$6$`, bcrypt `$2a$`/`$2b$`/`$2y$`, `$sha1$`, BSDi `_`,
//! DES), so no libcrypt is linked and no unsafe call is made.

use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;

/// Whether `password` matches `stored` (a password file's second field).
/// A setting crypt(3) cannot use matches nothing: libxcrypt's crypt then
/// returns its failure token, which never equals a stored password.
pub fn verify(password: &[u8], stored: &str) -> bool {
    if let Some(rest) = stored.strip_prefix("$apr1$") {
        return md5_crypt(password, "$apr1$", rest) == stored;
    }
    if let Some(plain) = stored.strip_prefix("{PLAIN}") {
        return plain.as_bytes() == password;
    }
    if let Some(encoded) = stored.strip_prefix("{SSHA}") {
        return ssha_matches(password, encoded);
    }
    if let Some(encoded) = stored.strip_prefix("{SHA}") {
        let digest = Sha1::digest(password);
        return base64::engine::general_purpose::STANDARD.encode(digest) == encoded;
    }
    pwhash::unix::crypt(password, stored).is_ok_and(|hash| hash == stored)
}

/// `{SSHA}`: base64 of SHA-1(password + salt) followed by the salt.
fn ssha_matches(password: &[u8], encoded: &str) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    if decoded.len() < 20 {
        return false;
    }
    let (digest, salt) = decoded.split_at(20);
    let mut sha = Sha1::new();
    sha.update(password);
    sha.update(salt);
    sha.finalize()[..] == *digest
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn to64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize] as char);
        v >>= 6;
    }
}

/// Poul-Henning Kamp's MD5-crypt with `magic` (`$1$` or Apache's `$apr1$`):
/// `setting` is what follows the magic (the salt, up to 8 characters
/// before a `$`).
pub fn md5_crypt(password: &[u8], magic: &str, setting: &str) -> String {
    let salt = setting.split('$').next().unwrap_or("");
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut last = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(last);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(last);
        } else {
            c.update(password);
        }
        last = c.finalize();
    }
    let f = |i: usize| u32::from(last[i]);
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(&mut out, f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_agrees_with_crypt3() {
        // The $1$ variant is checked against pwhash's own MD5-crypt, so
        // that the $apr1$ one (the same algorithm, another magic) is right.
        for (pw, salt) in [
            ("password", "5pZSV9va"),
            ("", "abc"),
            ("a much longer password than sixteen", "saltsalt"),
        ] {
            let setting = format!("$1${salt}$");
            // Deprecated for new passwords only; here it is the reference.
            #[allow(deprecated)]
            let theirs = pwhash::md5_crypt::hash_with(setting.as_str(), pw).unwrap();
            assert_eq!(md5_crypt(pw.as_bytes(), "$1$", salt), theirs);
        }
    }

    #[test]
    fn apr1_known_value() {
        // `openssl passwd -apr1 -salt r31..... password`
        assert_eq!(
            md5_crypt(b"password", "$apr1$", "r31....."),
            "$apr1$r31.....$ARC3pREO82RIm0aQ2zszC0"
        );
    }

    #[test]
    fn every_format() {
        assert!(verify(b"secret", "{PLAIN}secret"));
        assert!(!verify(b"other", "{PLAIN}secret"));
        // base64(sha1("password"))
        assert!(verify(b"password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        assert!(!verify(b"passwor", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        let mut sha = Sha1::new();
        sha.update(b"password");
        sha.update(b"salt");
        let mut raw = sha.finalize().to_vec();
        raw.extend_from_slice(b"salt");
        let ssha = format!(
            "{{SSHA}}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert!(verify(b"password", &ssha));
        assert!(!verify(b"Password", &ssha));
        let apr1 = md5_crypt(b"password", "$apr1$", "salt");
        assert!(verify(b"password", &apr1));
        assert!(verify(b"password", "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0"));
        assert!(verify(b"test", "aZGJuE6EXrjEE"), "DES");
        assert!(!verify(b"x", "$9$unknown"));
        assert!(!verify(b"1", "$1$"), "a broken setting matches nothing");
    }
}
