//! Tokens, as `ngx_conf_read_token` splits them.
//!
//! The lexer works on raw bytes (nginx does) and hands out one *statement* at
//! a time: the words of a directive together with what ended it (`;` or `{`),
//! a closing `}`, or the end of the input. Word text is converted to UTF-8
//! lossily only once it is complete.
//!
//! nginx reads a file through a 4096-byte buffer (`NGX_CONF_BUFFER`) and fails
//! when the text between the start of the current token and the read position
//! fills the whole buffer. That window is simulated exactly, so the same input
//! gives the same "too long parameter" errors as nginx. Text given with `-g`
//! is not read through that buffer, so it has no such limit.

/// nginx's `NGX_CONF_BUFFER`: the size of the buffer a file is read through.
pub(crate) const CONF_BUFFER: usize = 4096;

/// How the text is read, which changes a few limits and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A configuration file, read through nginx's 4096-byte buffer.
    File,
    /// The `-g` parameter, held in memory in one piece.
    Param,
}

/// One word of a directive, quotes removed and escapes translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The text.
    pub(crate) value: String,
    /// Whether the word was written in quotes.
    pub(crate) quoted: bool,
}

/// What the lexer found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Words ended by `;` (`block == false`) or `{` (`block == true`).
    /// Never empty. `line` is the line of the `;` or `{`.
    Statement {
        /// The words, the directive name first.
        words: Vec<Word>,
        /// Whether a `{` ended them.
        block: bool,
        /// The line of the terminating `;` or `{`.
        line: usize,
    },
    /// A `}` with no words before it.
    BlockEnd {
        /// The line of the `}`.
        line: usize,
    },
    /// The end of the input, with no words pending.
    Eof {
        /// The last line.
        line: usize,
    },
}

/// A syntax error found while splitting tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    /// nginx's message, without the position.
    pub(crate) message: String,
    /// The line nginx reports.
    pub(crate) line: usize,
}

/// Splits configuration text into statements.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    data: &'a [u8],
    mode: Mode,
    /// Offset of the next byte to read.
    pos: usize,
    /// Offset just past the bytes nginx's buffer currently holds.
    last: usize,
    /// The current 1-based line.
    line: usize,
}

fn is_space(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

/// The character that starts at `data[at]`, for error messages: the whole
/// UTF-8 sequence when it is one, else U+FFFD.
fn char_at(data: &[u8], at: usize) -> char {
    let Some(&first) = data.get(at) else {
        return char::REPLACEMENT_CHARACTER;
    };
    if first.is_ascii() {
        return char::from(first);
    }
    let end = data.len().min(at + 4);
    for stop in at + 2..=end {
        if let Some(c) = data
            .get(at..stop)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|s| s.chars().next())
        {
            return c;
        }
    }
    char::REPLACEMENT_CHARACTER
}

/// Translates escapes the way nginx does when it copies a word out:
/// `\"`, `\'`, `\\` drop the backslash, `\t`, `\r`, `\n` become the control
/// character, any other `\x` is kept as it is.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' {
            match raw.get(i + 1) {
                Some(&c @ (b'"' | b'\'' | b'\\')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

impl<'a> Lexer<'a> {
    /// A lexer over `data`, starting at line 1.
    pub(crate) fn new(data: &'a [u8], mode: Mode) -> Self {
        let last = match mode {
            Mode::File => 0,
            Mode::Param => data.len(),
        };
        Lexer {
            data,
            mode,
            pos: 0,
            last,
            line: 1,
        }
    }

    fn error(&self, message: String) -> LexError {
        LexError {
            message,
            line: self.line,
        }
    }

    /// Reads the next statement, `}` or end of input.
    pub(crate) fn next_token(&mut self) -> Result<Token, LexError> {
        let mut words: Vec<Word> = Vec::new();
        let mut start = self.pos;
        let mut start_line = self.line;
        let mut need_space = false;
        let mut last_space = true;
        let mut comment = false;
        let mut variable = false;
        let mut escaped = false;
        let mut s_quoted = false;
        let mut d_quoted = false;
        let mut quoted_word = false;

        loop {
            if self.pos >= self.last {
                if self.last >= self.data.len() {
                    if !words.is_empty() || !last_space {
                        let message = match self.mode {
                            Mode::Param => "unexpected end of parameter, expecting \";\"",
                            Mode::File => "unexpected end of file, expecting \";\" or \"}\"",
                        };
                        return Err(self.error(message.to_string()));
                    }
                    return Ok(Token::Eof { line: self.line });
                }
                // nginx refills its buffer here, keeping the bytes from
                // `start` on; if they already fill it, the token is too long.
                if self.pos.saturating_sub(start) >= CONF_BUFFER {
                    self.line = start_line;
                    return Err(self.too_long(start, d_quoted, s_quoted));
                }
                self.last = self.data.len().min(start + CONF_BUFFER);
            }

            let Some(&ch) = self.data.get(self.pos) else {
                // Unreachable: `pos < last <= data.len()`. Treat as the end.
                self.last = self.data.len();
                self.pos = self.data.len();
                continue;
            };
            self.pos += 1;

            if ch == b'\n' {
                self.line += 1;
                comment = false;
            }
            if comment {
                continue;
            }
            if escaped {
                escaped = false;
                continue;
            }

            if need_space {
                if is_space(ch) {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                match ch {
                    b';' => return Ok(self.statement(words, false)),
                    b'{' => return Ok(self.statement(words, true)),
                    // `)` may follow a quoted word (in `if (...)`); it then
                    // starts a new word of its own, below.
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => {
                        let c = char_at(self.data, self.pos - 1);
                        return Err(self.error(format!("unexpected \"{c}\"")));
                    }
                }
            }

            if last_space {
                if is_space(ch) {
                    continue;
                }
                start = self.pos - 1;
                start_line = self.line;
                quoted_word = false;
                match ch {
                    b';' | b'{' => {
                        if words.is_empty() {
                            return Err(self.error(format!("unexpected \"{}\"", char::from(ch))));
                        }
                        return Ok(self.statement(words, ch == b'{'));
                    }
                    b'}' => {
                        if !words.is_empty() {
                            return Err(self.error("unexpected \"}\"".to_string()));
                        }
                        return Ok(Token::BlockEnd { line: self.line });
                    }
                    b'#' => comment = true,
                    b'\\' => {
                        escaped = true;
                        last_space = false;
                    }
                    b'"' | b'\'' => {
                        start += 1;
                        d_quoted = ch == b'"';
                        s_quoted = ch == b'\'';
                        quoted_word = true;
                        last_space = false;
                    }
                    // As in current nginx: `${` may start a word too.
                    b'$' => {
                        variable = true;
                        last_space = false;
                    }
                    _ => last_space = false,
                }
                continue;
            }

            // Inside a word.
            if ch == b'{' && variable {
                continue;
            }
            variable = false;
            if ch == b'\\' {
                escaped = true;
                continue;
            }
            if ch == b'$' {
                variable = true;
                continue;
            }

            let found = if d_quoted {
                d_quoted = ch != b'"';
                !d_quoted
            } else if s_quoted {
                s_quoted = ch != b'\'';
                !s_quoted
            } else {
                is_space(ch) || ch == b';' || ch == b'{'
            };
            if !found {
                continue;
            }
            if quoted_word {
                need_space = true;
            } else {
                last_space = true;
            }

            let raw = self.data.get(start..self.pos - 1).unwrap_or_default();
            words.push(Word {
                value: String::from_utf8_lossy(&unescape(raw)).into_owned(),
                quoted: quoted_word,
            });
            if !quoted_word {
                match ch {
                    b';' => return Ok(self.statement(words, false)),
                    b'{' => return Ok(self.statement(words, true)),
                    _ => {}
                }
            }
        }
    }

    fn statement(&self, words: Vec<Word>, block: bool) -> Token {
        Token::Statement {
            words,
            block,
            line: self.line,
        }
    }

    fn too_long(&self, start: usize, d_quoted: bool, s_quoted: bool) -> LexError {
        let quote = if d_quoted {
            '"'
        } else if s_quoted {
            '\''
        } else {
            let head = self.data.get(start..start + 10).unwrap_or_default();
            return self.error(format!(
                "too long parameter \"{}...\" started",
                String::from_utf8_lossy(head)
            ));
        };
        self.error(format!(
            "too long parameter, probably missing terminating \"{quote}\" character"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        match Lexer::new(text.as_bytes(), Mode::File).next_token() {
            Ok(Token::Statement { words, .. }) => words.into_iter().map(|w| w.value).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unescape_translates_only_nginx_escapes() {
        assert_eq!(unescape(br#"\"\'\\\t\r\n\x\"#), b"\"'\\\t\r\n\\x\\");
        assert_eq!(unescape(b""), b"");
    }

    #[test]
    fn char_at_decodes_utf8_or_replaces() {
        assert_eq!(char_at("é".as_bytes(), 0), 'é');
        assert_eq!(char_at(b"\xff", 0), char::REPLACEMENT_CHARACTER);
        assert_eq!(char_at(b"\xc3", 0), char::REPLACEMENT_CHARACTER);
        assert_eq!(char_at(b"", 3), char::REPLACEMENT_CHARACTER);
    }

    #[test]
    fn statements_come_one_at_a_time() {
        let mut lexer = Lexer::new(b"a b;\nc {\n}", Mode::File);
        assert!(matches!(
            lexer.next_token(),
            Ok(Token::Statement {
                block: false,
                line: 1,
                ..
            })
        ));
        assert!(matches!(
            lexer.next_token(),
            Ok(Token::Statement {
                block: true,
                line: 2,
                ..
            })
        ));
        assert_eq!(lexer.next_token(), Ok(Token::BlockEnd { line: 3 }));
        assert_eq!(lexer.next_token(), Ok(Token::Eof { line: 3 }));
        assert_eq!(words("x \"y\" 'z'\t${a}{"), ["x", "y", "z", "${a}"]);
    }
}
