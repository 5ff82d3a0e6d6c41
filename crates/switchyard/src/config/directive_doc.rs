//! docs/directives.md, rendered from the directive tables: the prose comes
//! from docs/directives.template.md, each `{{directives}}` / `{{known}}`
//! line of it becomes a table of [`super::directives::DIRECTIVES`] /
//! [`super::known::KNOWN`]. A unit test keeps the committed file equal to
//! the rendering, so the doc cannot drift from what `-t` does.
//!
//! The prose is a markdown template rather than Rust strings because most of
//! it (the variables tables) is edited as markdown and has no table in code
//! to come from.

use super::directive_notes::note_for;
use super::directives::{Ctx, Spec, Support, DIRECTIVES};
use super::known::KNOWN;

/// docs/directives.template.md, the doc's fixed text.
pub const TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/directives.template.md"
));

/// The template line replaced by the table of switchyard's directives.
pub const DIRECTIVES_PLACEHOLDER: &str = "{{directives}}";

/// The template line replaced by the table of the rest of nginx's.
pub const KNOWN_PLACEHOLDER: &str = "{{known}}";

/// The whole of docs/directives.md.
pub fn render() -> String {
    render_with(TEMPLATE)
}

/// `template` with its placeholder lines replaced by the tables.
pub fn render_with(template: &str) -> String {
    let mut out = String::new();
    for line in template.split_inclusive('\n') {
        let (text, newline) = match line.strip_suffix('\n') {
            Some(text) => (text, "\n"),
            None => (line, ""),
        };
        if text == DIRECTIVES_PLACEHOLDER {
            table(&mut out, DIRECTIVES, true);
        } else if text == KNOWN_PLACEHOLDER {
            table(&mut out, KNOWN, false);
        } else {
            out.push_str(text);
        }
        out.push_str(newline);
    }
    out
}

/// A table of `rows`, without a final newline (the placeholder's line has
/// one). Only switchyard's own rows have notes.
fn table(out: &mut String, rows: &[Spec], notes: bool) {
    out.push_str("| directive | contexts | status | notes |\n|---|---|---|---|");
    for spec in rows {
        let note = if notes { note_for(spec) } else { "" };
        out.push_str(&format!(
            "\n| `{}` | {} | {} | {} |",
            spec.name,
            contexts(spec),
            status(spec.support),
            note
        ));
    }
}

/// The contexts cell: nginx.org's names, "(block)" for a directive that
/// takes one.
pub fn contexts(spec: &Spec) -> String {
    let mut cell = if spec.ctx == Ctx::EVERY {
        "any".to_string()
    } else {
        Ctx::NAMED
            .iter()
            .filter(|(ctx, _)| spec.ctx.contains(*ctx))
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if spec.block {
        cell.push_str(" (block)");
    }
    cell
}

/// The status cell.
pub fn status(support: Support) -> &'static str {
    match support {
        Support::Yes => "supported",
        Support::Accepted => "accepted",
        Support::NotYet => "not supported yet",
    }
}

#[cfg(test)]
mod tests {
    use super::super::directive_notes::NOTES;
    use super::super::directives::is_stream_row;
    use super::*;

    const DOC: &str = "/../../docs/directives.md";
    const BLESS: &str = "SWITCHYARD_BLESS_DOCS";

    /// The committed docs/directives.md is the rendering of the tables;
    /// with SWITCHYARD_BLESS_DOCS=1 the test writes it instead.
    #[test]
    fn the_doc_is_generated_from_the_table() {
        let path = format!("{}{DOC}", env!("CARGO_MANIFEST_DIR"));
        let rendered = render();
        if std::env::var(BLESS).is_ok_and(|v| v == "1") {
            std::fs::write(&path, &rendered).expect("write docs/directives.md");
            return;
        }
        let committed = std::fs::read_to_string(&path).expect("read docs/directives.md");
        if let Some(difference) = first_difference(&committed, &rendered) {
            panic!(
                "docs/directives.md is not what the directive table renders: {difference}\n\
                 edit crates/switchyard/src/config/directives.rs, directive_notes.rs or \
                 docs/directives.template.md, not the doc, and regenerate it with\n    \
                 {BLESS}=1 cargo test -p switchyard --lib config::directive_doc"
            );
        }
    }

    /// Where two texts part, by line, for a readable failure.
    fn first_difference(committed: &str, rendered: &str) -> Option<String> {
        if committed == rendered {
            return None;
        }
        let mut a = committed.split('\n');
        let mut b = rendered.split('\n');
        let mut number = 1;
        loop {
            match (a.next(), b.next()) {
                (Some(x), Some(y)) if x == y => number += 1,
                (x, y) => {
                    return Some(format!(
                        "line {number} differs:\n  file:     {}\n  rendered: {}",
                        x.unwrap_or("(end of file)"),
                        y.unwrap_or("(end of file)")
                    ))
                }
            }
        }
    }

    #[test]
    fn a_difference_names_its_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let d = first_difference("a\nb\nc\n", "a\nB\nc\n").unwrap();
        assert!(d.starts_with("line 2 differs"), "{d}");
        assert!(
            d.contains("file:     b") && d.contains("rendered: B"),
            "{d}"
        );
        let d = first_difference("a", "a\nb").unwrap();
        assert!(d.contains("line 2") && d.contains("(end of file)"), "{d}");
        // A missing final newline is a difference too.
        assert!(first_difference("a", "a\n").is_some());
    }

    #[test]
    fn the_template_has_each_table_once() {
        for placeholder in [DIRECTIVES_PLACEHOLDER, KNOWN_PLACEHOLDER] {
            assert_eq!(
                TEMPLATE.lines().filter(|l| *l == placeholder).count(),
                1,
                "{placeholder}"
            );
        }
        let doc = render();
        assert!(
            doc.contains("| `proxy_pass` | location, if in location, limit_except | supported |")
        );
        assert!(doc.contains("| `include` | any | supported |  |"));
        assert!(doc.contains("| `events` | main (block) | supported |  |"));
        assert!(!doc.contains("{{"));
    }

    /// An accepted directive does nothing, so its note must say why.
    #[test]
    fn an_accepted_directive_says_why() {
        for spec in DIRECTIVES.iter().filter(|s| s.support == Support::Accepted) {
            assert!(
                !note_for(spec).is_empty(),
                "{}{}: accepted without a note saying why",
                spec.name,
                if is_stream_row(spec) { " (stream)" } else { "" }
            );
        }
    }

    /// Each note is about one row of the table and fits in a table cell.
    #[test]
    fn every_note_has_its_row() {
        let mut seen = std::collections::HashSet::new();
        for note in NOTES {
            assert!(
                seen.insert((note.name, note.stream)),
                "{} has two notes",
                note.name
            );
            assert!(
                DIRECTIVES
                    .iter()
                    .any(|s| s.name == note.name && is_stream_row(s) == note.stream),
                "the note of {}{} has no row",
                note.name,
                if note.stream { " (stream)" } else { "" }
            );
            assert!(
                !note.text.is_empty() && !note.text.contains('\n'),
                "{}",
                note.name
            );
            assert!(
                !note.text.replace("\\|", "").contains('|'),
                "{}: a `|` in a note is written `\\|`",
                note.name
            );
        }
    }
}
