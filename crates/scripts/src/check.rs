//! What deploying an action checks before any sign-in runs it: its size, the modules
//! it requires (built in only), that it parses (a syntax error says where), and that
//! loading it exports the trigger's handler.

use std::rc::Rc;
use std::time::Instant;

use rquickjs::Context;
use tessera_core::actions::{BUILT_IN_MODULES, CodeProblem, Trigger};

use crate::http::Http;
use crate::sandbox::{self, FILE, HostState, Limits, VendorUrls};

/// Auth0's limit on an action's source.
pub const CODE_LIMIT: usize = 100 * 1024;

fn problem(message: impl Into<String>) -> CodeProblem {
    CodeProblem { message: message.into(), line: None, column: None }
}

/// Line and column (1-based) of byte `at` in `code`.
fn position(code: &str, at: usize) -> (u32, u32) {
    let before = &code[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
}

/// Every `require('name')` with a literal name must name a built-in module.
pub(crate) fn modules(code: &str) -> Result<(), CodeProblem> {
    let mut from = 0;
    while let Some(found) = code[from..].find("require(") {
        let at = from + found;
        from = at + "require(".len();
        let rest = code[from..].trim_start();
        let Some(quote) = rest.chars().next().filter(|c| matches!(c, '\'' | '"' | '`')) else { continue };
        let Some(end) = rest[1..].find(quote) else { continue };
        let name = &rest[1..=end];
        let bare = name.strip_prefix("node:").unwrap_or(name);
        if !BUILT_IN_MODULES.contains(&bare) {
            let (line, column) = position(code, at);
            return Err(CodeProblem {
                message: format!(
                    "The module '{name}' is not available; actions may require only the built-in modules: {}",
                    BUILT_IN_MODULES.join(", ")
                ),
                line: Some(line),
                column: Some(column),
            });
        }
    }
    Ok(())
}

/// `action.js:LINE:COLUMN` in an error's stack, as the author counts lines (the
/// module wrapper adds one before the code).
fn where_in(stack: &str) -> (Option<u32>, Option<u32>) {
    let Some(at) = stack.find(&format!("{FILE}:")) else { return (None, None) };
    let mut numbers = stack[at + FILE.len() + 1..].split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    let line = numbers.next().and_then(Result::ok).map(|l| l.saturating_sub(1).max(1));
    let column = numbers.next().and_then(Result::ok);
    (line, column)
}

pub(crate) fn check(
    sandbox: &sandbox::Sandbox,
    trigger: Trigger,
    code: &str,
    limits: &Limits,
    http: &Rc<Http>,
    vendors: &VendorUrls,
) -> Result<(), CodeProblem> {
    if code.len() > CODE_LIMIT {
        return Err(problem(format!("The code is {} bytes; an action may have at most {CODE_LIMIT}.", code.len())));
    }
    modules(code)?;
    let state =
        Rc::new(HostState { logs: Default::default(), secrets: Vec::new(), deadline: Instant::now() + limits.time });
    let context = Context::full(sandbox.runtime()).map_err(|e| problem(e.to_string()))?;
    let _armed = sandbox.armed(state.deadline);
    context.with(|ctx| {
        let tools = sandbox::prelude(&ctx, &state, http, vendors).map_err(|e| problem(sandbox::caught(&ctx, e)))?;
        let exports = match sandbox::load(&ctx, code, &tools.require) {
            Ok(e) => e,
            Err(e) => {
                let thrown = if matches!(e, rquickjs::Error::Exception) { Some(ctx.catch()) } else { None };
                let message = match &thrown {
                    Some(v) => {
                        let name = v.as_object().and_then(|o| o.get::<_, Option<String>>("name").ok().flatten());
                        let text = sandbox::describe(&ctx, v);
                        name.map_or(text.clone(), |n| format!("{n}: {text}"))
                    }
                    None => e.to_string(),
                };
                let stack = thrown
                    .as_ref()
                    .and_then(|v| v.as_object())
                    .and_then(|o| o.get::<_, Option<String>>("stack").ok().flatten())
                    .unwrap_or_default();
                let (line, column) = where_in(&stack);
                return Err(CodeProblem { message, line, column });
            }
        };
        let handler: rquickjs::Value = exports.get(trigger.handler()).map_err(|e| problem(e.to_string()))?;
        if !handler.is_function() {
            return Err(problem(format!("A {} action must export {}.", trigger.id(), trigger.handler())));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_built_in_modules_may_be_required() {
        assert!(modules("const a = require('axios'); const c = require(\"node:crypto\");").is_ok());
        let p = modules("const x = 1;\nconst fs =  require( 'fs');").unwrap_err();
        assert!(p.message.contains("'fs'"), "{p:?}");
        assert_eq!((p.line, p.column), (Some(2), Some(13)));
    }

    #[test]
    fn a_stack_gives_the_authors_line() {
        assert_eq!(where_in("SyntaxError: x\n    at action.js:4:9\n"), (Some(3), Some(9)));
        assert_eq!(where_in("no place"), (None, None));
    }
}
