//! The rewrite phase: `set`, `return` and `if` run in file order, first the
//! server's, then the location's. A location `if` that matches makes its
//! own configuration the one that answers ("if is evil": nothing else of
//! the location's body applies, and later directives still run).

use std::sync::Arc;

use crate::config::model::{Condition, FileTest, LocationConfig, Op};

use super::exchange::Exchange;

/// What the script decided.
#[derive(Debug)]
pub enum Outcome {
    /// Go on to the content phase.
    Continue,
    /// `return code [text]` (text rendered).
    Return(u16, Option<String>),
}

/// Runs `ops`; a matching location `if` replaces `location`.
pub fn run(ops: &[Op], ex: &mut Exchange, location: &mut Option<Arc<LocationConfig>>) -> Outcome {
    match step(ops, ex, location) {
        Flow::Return(code, text) => Outcome::Return(code, text),
        Flow::Next | Flow::Break => Outcome::Continue,
    }
}

enum Flow {
    Next,
    Break,
    Return(u16, Option<String>),
}

fn step(ops: &[Op], ex: &mut Exchange, location: &mut Option<Arc<LocationConfig>>) -> Flow {
    for op in ops {
        match op {
            Op::Set(name, value) => {
                let v = value.render(ex);
                ex.set_var(name, v);
            }
            Op::Return { code, text } => {
                return Flow::Return(*code, text.as_ref().map(|t| t.render(ex)))
            }
            Op::Break => return Flow::Break,
            Op::If(block) => {
                if holds(&block.condition, ex) {
                    if let Some(l) = &block.location {
                        *location = Some(l.clone());
                    }
                    match step(&block.script, ex, location) {
                        Flow::Next => {}
                        other => return other,
                    }
                }
            }
        }
    }
    Flow::Next
}

fn holds(condition: &Condition, ex: &mut Exchange) -> bool {
    match condition {
        Condition::Value(t) => {
            let v = t.render(ex);
            !v.is_empty() && v != "0"
        }
        Condition::Equals(lhs, rhs, negated) => (lhs.render(ex) == rhs.render(ex)) != *negated,
        Condition::Matches(lhs, re, negated) => {
            let text = lhs.render(ex);
            ex.capture(re, &text) != *negated
        }
        Condition::File(path, test, negated) => {
            let meta = std::fs::metadata(path.render(ex));
            let ok = match (test, meta) {
                (FileTest::File, Ok(m)) => m.is_file(),
                (FileTest::Dir, Ok(m)) => m.is_dir(),
                (FileTest::Exists, Ok(_)) => true,
                (_, Err(_)) => false,
            };
            ok != *negated
        }
    }
}
