//! Actions: the JavaScript teams bring from Auth0, run at sign-in (`post-login`) and
//! when a phone message is sent. Core knows what an execution is given and what it
//! gives back; the engine that runs it (`tessera-scripts`) sits behind [`ScriptRunner`],
//! so core stays free of any JavaScript engine.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;
use crate::ids::{ActionId, ActionVersionId, ExecutionId, TenantId};
use crate::secret::Secret;

/// Where an action runs (Auth0's trigger ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    PostLogin,
    SendPhoneMessage,
    CustomPhoneProvider,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::PostLogin, Trigger::SendPhoneMessage, Trigger::CustomPhoneProvider];

    pub fn id(self) -> &'static str {
        match self {
            Trigger::PostLogin => "post-login",
            Trigger::SendPhoneMessage => "send-phone-message",
            Trigger::CustomPhoneProvider => "custom-phone-provider",
        }
    }

    pub fn parse(id: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The function an action for this trigger must export.
    pub fn handler(self) -> &'static str {
        match self {
            Trigger::PostLogin => "onExecutePostLogin",
            Trigger::SendPhoneMessage => "onExecuteSendPhoneMessage",
            Trigger::CustomPhoneProvider => "onExecuteCustomPhoneProvider",
        }
    }

    /// The function that resumes a redirected sign-in, for the triggers that have one.
    pub fn resume_handler(self) -> Option<&'static str> {
        (self == Trigger::PostLogin).then_some("onContinuePostLogin")
    }
}

/// One run of one action: its code, the function to call, the `event` it is given and
/// its secrets (added to `event.secrets`, and never shown in its logs).
#[derive(Clone, Debug)]
pub struct Execution {
    pub trigger: Trigger,
    /// `onExecutePostLogin`, `onContinuePostLogin`, …
    pub handler: &'static str,
    pub code: Arc<str>,
    pub event: Value,
    pub secrets: Vec<(String, Secret)>,
    /// What the few `api` methods that answer something answer from: for post-login
    /// `canRedirect`, `issuer`, `state` and `now` (milliseconds; for
    /// `encodeToken`/`validateToken`) and the
    /// trigger's `cache` entries (`{key: {value, expires_at}}`).
    pub api_data: Value,
}

/// What an action asked of `api` (`access.deny`, `idToken.setCustomClaim`, …), in the
/// order it asked. What each call means is the trigger's business, in core.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiCall {
    pub name: String,
    pub args: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Log => "log",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A line an action logged: at most [`LOG_LINE_LIMIT`] characters, secrets redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Auth0 keeps 256 characters of each line an action logs.
pub const LOG_LINE_LIMIT: usize = 256;

/// What a finished execution did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Executed {
    pub calls: Vec<ApiCall>,
    pub logs: Vec<LogLine>,
    pub took: Duration,
}

/// Why an execution did not finish. Each fails the sign-in (or the send) as Auth0's
/// `access_denied`, with [`ScriptFailure::description`] as the reason.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptFailure {
    /// An exception left the handler (or the code did not load).
    Threw { message: String, logs: Vec<LogLine> },
    /// The wall-clock limit passed.
    TimedOut { limit: Duration, logs: Vec<LogLine> },
    /// The memory limit was reached.
    OutOfMemory { logs: Vec<LogLine> },
    /// The handler's promise can never settle (nothing left to run, no timer pending).
    NeverSettled { logs: Vec<LogLine> },
    /// Every engine is busy and the queue is full (Auth0's `resource_exhausted`).
    Busy,
}

impl ScriptFailure {
    pub fn description(&self) -> String {
        match self {
            ScriptFailure::Threw { message, .. } => message.clone(),
            ScriptFailure::TimedOut { limit, .. } => {
                format!("The action exceeded its execution time of {} seconds.", limit.as_secs_f64())
            }
            ScriptFailure::OutOfMemory { .. } => "The action ran out of memory.".into(),
            ScriptFailure::NeverSettled { .. } => "The action's handler returned a promise that never settles.".into(),
            ScriptFailure::Busy => "resource_exhausted: too many actions are running; try again.".into(),
        }
    }

    pub fn logs(&self) -> &[LogLine] {
        match self {
            ScriptFailure::Threw { logs, .. }
            | ScriptFailure::TimedOut { logs, .. }
            | ScriptFailure::OutOfMemory { logs }
            | ScriptFailure::NeverSettled { logs } => logs,
            ScriptFailure::Busy => &[],
        }
    }
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// Why code cannot be deployed: a syntax error (with where), a missing handler, a
/// module that is not built in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeProblem {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl fmt::Display for CodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{} (line {l}, column {c})", self.message),
            (Some(l), None) => write!(f, "{} (line {l})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// The modules an action may `require`, all built in: nothing is installed from npm.
pub const BUILT_IN_MODULES: [&str; 4] = ["axios", "crypto", "plivo", "twilio"];

/// Runs actions, each in a fresh sandbox with memory and time limits.
#[async_trait]
pub trait ScriptRunner: Send + Sync {
    async fn run(&self, execution: Execution) -> Result<Executed, ScriptFailure>;

    /// Whether `code` would load for `trigger`: it parses, exports the trigger's
    /// handler, and requires only built-in modules.
    async fn check(&self, trigger: Trigger, code: &str) -> Result<(), CodeProblem>;
}

/// How long a trigger's execution record is kept (Auth0: 10 days).
pub const EXECUTION_RETENTION: Duration = Duration::from_secs(10 * 24 * 3600);

/// Auth0's limits, enforced here.
pub mod limits {
    /// Actions bound to one trigger.
    pub const BINDINGS_PER_TRIGGER: usize = 20;
    pub const SECRETS_PER_ACTION: usize = 30;
    pub const SECRET_NAME: usize = 128;
    pub const SECRET_VALUE: usize = 4096;
    /// An action's source, in bytes.
    pub const CODE: usize = 100 * 1024;
    pub const NAME: usize = 128;
    /// `app_metadata` and `user_metadata` each, as JSON.
    pub const METADATA: usize = 32 * 1024;
}

/// An npm dependency an action declares: only the built-in modules are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub version: String,
}

/// A secret as the action keeps it: sealed together with the others at rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSecret {
    pub name: String,
    pub value: String,
    pub updated_at: i64,
}

/// What an action's secrets are sealed under, given the action's id.
pub fn secrets_context(id: &str) -> Vec<u8> {
    format!("action secrets:{id}").into_bytes()
}

/// An action: its draft code (what the next deploy makes a version of) and which
/// version runs when it is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub id: ActionId,
    pub tenant_id: TenantId,
    pub name: String,
    pub trigger: Trigger,
    /// The trigger's version the action was written for (`v3` for post-login).
    pub trigger_version: String,
    pub runtime: String,
    pub code: String,
    pub dependencies: Vec<Dependency>,
    /// The sealed JSON list of [`ActionSecret`]s.
    pub sealed_secrets: String,
    pub deployed_version: Option<ActionVersionId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A deployed, immutable copy of an action's code, numbered from 1 per action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionVersion {
    pub id: ActionVersionId,
    pub action_id: ActionId,
    pub number: u32,
    pub code: String,
    pub dependencies: Vec<Dependency>,
    pub runtime: String,
    pub created_at: Timestamp,
}

/// An action's place in a trigger's flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerBinding {
    pub id: String,
    pub action_id: ActionId,
    pub display_name: String,
    pub created_at: Timestamp,
}

/// A bound action ready to run: the code of its deployed version and its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundAction {
    pub binding: TriggerBinding,
    pub name: String,
    pub version: ActionVersion,
    pub sealed_secrets: String,
}

/// What one action did in one run of a trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub action_name: String,
    pub action_id: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    pub logs: Vec<String>,
    pub started_at: i64,
    pub ended_at: i64,
}

/// One run of a trigger's actions (Auth0's execution), kept for inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub tenant_id: TenantId,
    pub trigger: Trigger,
    /// `final` when every action ran; `partial` when one failed or denied.
    pub status: String,
    pub results: Vec<ActionResult>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_round_trip_their_auth0_ids() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.id()), Some(t));
        }
        assert_eq!(Trigger::parse("pre-user-registration"), None);
        assert_eq!(Trigger::PostLogin.resume_handler(), Some("onContinuePostLogin"));
        assert_eq!(Trigger::SendPhoneMessage.resume_handler(), None);
    }

    #[test]
    fn a_problem_says_where() {
        let p = CodeProblem { message: "SyntaxError: unexpected token".into(), line: Some(3), column: Some(7) };
        assert_eq!(p.to_string(), "SyntaxError: unexpected token (line 3, column 7)");
    }
}
