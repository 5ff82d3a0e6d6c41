//! ngx_http_auth_basic_module: the Basic credentials of the request
//! checked against `auth_basic_user_file`, read for each request as nginx
//! reads it; a failure is a 401 with `WWW-Authenticate: Basic realm="..."`.

use base64::Engine;
use http::header::{self, HeaderValue};

use crate::config::model::Settings;
use crate::observe::{error_log, ErrorLevel};
use crate::vars::VarSource;

use super::access::Verdict;
use super::exchange::Exchange;

/// The user and password of a Basic `Authorization` header, as nginx's
/// ngx_http_auth_basic_user reads it (`None`: absent or malformed).
pub fn credentials(headers: &http::HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"Basic ") {
        return None;
    }
    let encoded = value[6..].trim_ascii_start();
    // nginx decodes up to the first `=`, padding or not.
    let end = encoded
        .iter()
        .position(|b| *b == b'=')
        .unwrap_or(encoded.len());
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    if end == 0 {
        return None;
    }
    let decoded = engine.decode(&encoded[..end]).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    if colon == 0 {
        return None;
    }
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The stored password of `user` in a password file's text: the first
/// line `user:password[:...]` (comments and empty lines skipped).
fn stored_password<'a>(file: &'a [u8], user: &[u8]) -> Option<&'a [u8]> {
    for line in file.split(|b| *b == b'\n') {
        if line.first().is_some_and(|b| *b == b'#' || *b == b'\r') {
            continue;
        }
        let Some(rest) = line.strip_prefix(user).and_then(|r| r.strip_prefix(b":")) else {
            continue;
        };
        let end = rest
            .iter()
            .position(|b| matches!(b, b'\r' | b':'))
            .unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
    None
}

fn challenge(ex: &mut Exchange, realm: &str) -> Verdict {
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        ex.www_authenticate = vec![v];
    }
    Verdict::Refuse(401)
}

/// ngx_http_auth_basic_handler.
pub async fn check(settings: &Settings, ex: &mut Exchange) -> Verdict {
    let auth = &settings.auth;
    let (Some(realm), Some(user_file)) = (&auth.realm, &auth.user_file) else {
        return Verdict::Declined;
    };
    let realm = realm.render(&*ex as &dyn VarSource);
    if realm == "off" {
        return Verdict::Declined;
    }
    let context = super::proxy::log_context(ex, None);
    let Some((user, password)) = credentials(&ex.headers) else {
        error_log::log(
            ErrorLevel::Info,
            Some(ex.conn.id),
            &format!("no user/password was provided for basic authentication{context}"),
        );
        return challenge(ex, &realm);
    };
    let path = user_file.render(&*ex as &dyn VarSource);
    let file = match tokio::fs::read(&path).await {
        Ok(file) => file,
        Err(e) => {
            let (level, code) = if e.kind() == std::io::ErrorKind::NotFound {
                (ErrorLevel::Error, 403)
            } else {
                (ErrorLevel::Crit, 500)
            };
            error_log::log(
                level,
                Some(ex.conn.id),
                &format!(
                    "open() \"{path}\" failed ({}){context}",
                    error_log::os_error(&e)
                ),
            );
            return Verdict::Refuse(code);
        }
    };
    let user_text = String::from_utf8_lossy(&user).into_owned();
    let Some(stored) = stored_password(&file, &user) else {
        error_log::error(
            Some(ex.conn.id),
            &format!("user \"{user_text}\" was not found in \"{path}\"{context}"),
        );
        return challenge(ex, &realm);
    };
    let stored = String::from_utf8_lossy(stored);
    if super::crypt::verify(&password, &stored) {
        return Verdict::Allow;
    }
    error_log::error(
        Some(ex.conn.id),
        &format!("user \"{user_text}\": password mismatch{context}"),
    );
    challenge(ex, &realm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn credentials_as_nginx_reads_them() {
        // "user:pa:ss"
        assert_eq!(
            credentials(&header("Basic dXNlcjpwYTpzcw==")),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            credentials(&header("basic    dXNlcjpwYTpzcw")),
            Some((b"user".to_vec(), b"pa:ss".to_vec())),
            "any case, spaces, no padding"
        );
        assert_eq!(credentials(&header("Basic OnBhc3M=")), None, "no user");
        assert_eq!(credentials(&header("Basic dXNlcg==")), None, "no colon");
        assert_eq!(credentials(&header("Basic !!!")), None);
        assert_eq!(credentials(&header("Bearer x")), None);
        assert_eq!(credentials(&http::HeaderMap::new()), None);
    }

    #[test]
    fn password_file_lines() {
        let file = b"# comment\n\nalice:{PLAIN}one:extra\r\nbob:{PLAIN}two\r\nbo:{PLAIN}x\ncarol:{PLAIN}three";
        assert_eq!(stored_password(file, b"alice"), Some(&b"{PLAIN}one"[..]));
        assert_eq!(stored_password(file, b"bob"), Some(&b"{PLAIN}two"[..]));
        assert_eq!(stored_password(file, b"bo"), Some(&b"{PLAIN}x"[..]));
        assert_eq!(stored_password(file, b"carol"), Some(&b"{PLAIN}three"[..]));
        assert_eq!(stored_password(file, b"dave"), None);
        assert_eq!(stored_password(file, b"# comment"), None);
    }
}
