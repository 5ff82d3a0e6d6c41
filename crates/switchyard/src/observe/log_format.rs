//! `log_format`: a template plus nginx's escaping of variable values.

use crate::vars::{Segment, Template, TemplateError, Var, VarSource};

/// How variable values are escaped in a log line (`escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `"`, `\` and bytes outside printable ASCII as `\xHH` (nginx's default).
    Default,
    /// JSON string escaping.
    Json,
    /// Nothing escaped.
    None,
}

/// A compiled `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    template: Template,
    escape: Escape,
}

/// nginx's built-in `combined` format.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \
\"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

impl LogFormat {
    /// Compiles a format from its text (the arguments of `log_format`
    /// after the name, concatenated as nginx does).
    pub fn compile(text: &str, escape: Escape) -> Result<LogFormat, TemplateError> {
        Ok(LogFormat {
            template: Template::compile(text)?,
            escape,
        })
    }

    /// The `combined` format.
    pub fn combined() -> LogFormat {
        // COMBINED names only known variables; compile cannot fail.
        match LogFormat::compile(COMBINED, Escape::Default) {
            Ok(format) => format,
            Err(_) => LogFormat {
                template: Template::literal(COMBINED),
                escape: Escape::Default,
            },
        }
    }

    /// Whether a line may show response headers (`$sent_http_*`, or a
    /// `map` variable, whose value may name one): the request's copy of
    /// them is kept only for such a format.
    pub fn reads_sent_headers(&self) -> bool {
        self.template
            .segments()
            .iter()
            .any(|s| matches!(s, Segment::Var(Var::SentHttp(_) | Var::User(..))))
    }

    /// Renders one line (without the newline). A variable that is not
    /// found is written as `-` with the default escaping and as nothing
    /// with `json` or `none`; one found empty is written as nothing
    /// (ngx_http_log_variable and its json and unescaped kin).
    pub fn render(&self, source: &dyn VarSource) -> String {
        let mut out = String::with_capacity(160);
        for segment in self.template.segments() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Var(var) => match source.var_bytes(var) {
                    Some(value) => escape_into(&mut out, &value, self.escape),
                    None => {
                        if self.escape == Escape::Default {
                            out.push('-');
                        }
                    }
                },
            }
        }
        out
    }
}

fn escape_into(out: &mut String, value: &[u8], escape: Escape) {
    match escape {
        Escape::None => out.push_str(&String::from_utf8_lossy(value)),
        Escape::Default => {
            for &byte in value {
                if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
                    out.push_str(&format!("\\x{byte:02X}"));
                } else {
                    out.push(byte as char);
                }
            }
        }
        Escape::Json => {
            for ch in String::from_utf8_lossy(value).chars() {
                match ch {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::Var;
    use std::borrow::Cow;

    struct Req;
    impl VarSource for Req {
        fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
            match var {
                Var::RemoteAddr => Some("127.0.0.1".into()),
                Var::TimeLocal => Some("27/Dec/2020:17:31:50 +0000".into()),
                Var::Request => Some("POST / HTTP/1.1".into()),
                Var::Status => Some("200".into()),
                Var::BodyBytesSent => Some("15".into()),
                Var::HttpHeader(h) if h == "user_agent" => Some("HTTPie/1.0.3 \"x\"".into()),
                Var::Args => Some("".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn knows_when_it_reads_sent_headers() {
        assert!(!LogFormat::combined().reads_sent_headers());
        let f = LogFormat::compile("$status $sent_http_content_type", Escape::Default).unwrap();
        assert!(f.reads_sent_headers());
    }

    #[test]
    fn combined_matches_the_seed_line() {
        assert_eq!(
            LogFormat::combined().render(&Req),
            "127.0.0.1 - - [27/Dec/2020:17:31:50 +0000] \"POST / HTTP/1.1\" 200 15 \"-\" \"HTTPie/1.0.3 \\x22x\\x22\""
        );
    }

    #[test]
    fn none_escape_leaves_missing_empty() {
        let f = LogFormat::compile("[$remote_user]$remote_addr", Escape::None).unwrap();
        assert_eq!(f.render(&Req), "[]127.0.0.1");
    }

    #[test]
    fn json_escape_leaves_missing_empty() {
        let f = LogFormat::compile(
            "{\"a\":\"$remote_user\",\"u\":\"$http_user_agent\"}",
            Escape::Json,
        )
        .unwrap();
        assert_eq!(
            f.render(&Req),
            "{\"a\":\"\",\"u\":\"HTTPie/1.0.3 \\\"x\\\"\"}"
        );
    }

    #[test]
    fn found_empty_is_nothing_and_not_found_a_dash() {
        let f = LogFormat::compile("[$args][$remote_user]", Escape::Default).unwrap();
        assert_eq!(f.render(&Req), "[][-]");
        for escape in [Escape::Json, Escape::None] {
            let f = LogFormat::compile("[$args][$remote_user]", escape).unwrap();
            assert_eq!(f.render(&Req), "[][]");
        }
    }
}
