//! One QuickJS runtime, owned by one engine thread, and the executions it runs: each
//! in a fresh context (nothing an action leaves behind is seen by the next), under the
//! runtime's memory limit and a wall-clock deadline that an interrupt handler enforces,
//! so a `while (true) {}` ends.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Function, Object, Runtime, Value};
use tessera_core::actions::{ApiCall, Executed, Execution, LOG_LINE_LIMIT, LogLevel, LogLine, ScriptFailure, Trigger};

use crate::host;
use crate::http::Http;

const PRELUDE: &str = include_str!("js/prelude.js");
const POST_LOGIN_API: &str = include_str!("js/api/post_login.js");
const PHONE_API: &str = include_str!("js/api/phone.js");
/// The file name errors and stacks give the action's code.
pub(crate) const FILE: &str = "action.js";
/// Lines an execution may log; more are dropped (and said to be).
const LOG_LINES: usize = 100;

/// Where the built-in vendor modules send their calls.
#[derive(Clone, Debug)]
pub struct VendorUrls {
    pub twilio_api: String,
    pub twilio_verify: String,
    pub plivo_api: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub memory: usize,
    pub stack: usize,
    pub time: Duration,
}

pub(crate) struct Sandbox {
    runtime: Runtime,
    /// Milliseconds since `epoch` after which the interrupt handler stops the script
    /// (`u64::MAX`: none).
    deadline: Arc<AtomicU64>,
    interrupted: Arc<AtomicBool>,
    epoch: Instant,
    /// Set when an execution ended in a way that may leave the runtime unsound (out of
    /// memory, interrupted): the engine thread makes a new one.
    pub(crate) spoiled: bool,
}

impl Sandbox {
    pub(crate) fn new(limits: &Limits) -> Result<Sandbox, String> {
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        runtime.set_memory_limit(limits.memory);
        runtime.set_max_stack_size(limits.stack);
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let interrupted = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let (d, i) = (deadline.clone(), interrupted.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            let over = now >= d.load(Ordering::Relaxed);
            if over {
                i.store(true, Ordering::Relaxed);
            }
            over
        })));
        Ok(Sandbox { runtime, deadline, interrupted, epoch, spoiled: false })
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The deadline set until the guard is dropped.
    pub(crate) fn armed(&self, until: Instant) -> Armed<'_> {
        self.arm(until);
        Armed(self)
    }

    fn arm(&self, until: Instant) {
        let ms = u64::try_from(until.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        self.interrupted.store(false, Ordering::Relaxed);
        self.deadline.store(ms, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline.store(u64::MAX, Ordering::Relaxed);
    }

    /// Runs one execution to its end.
    pub(crate) fn run(
        &mut self,
        ex: &Execution,
        limits: &Limits,
        http: &Rc<Http>,
        vendors: &VendorUrls,
    ) -> Result<Executed, ScriptFailure> {
        let started = Instant::now();
        let deadline = started + limits.time;
        let secrets: Vec<String> =
            ex.secrets.iter().map(|(_, v)| v.expose().to_owned()).filter(|v| !v.is_empty()).collect();
        let state = Rc::new(HostState { logs: RefCell::new(Vec::new()), secrets, deadline });
        self.arm(deadline);
        let context = Context::full(&self.runtime).map_err(|_| ScriptFailure::OutOfMemory { logs: Vec::new() })?;
        let outcome = context.with(|ctx| execute(&ctx, ex, &state, http, vendors));
        drop(context);
        self.disarm();
        let logs = state.logs.borrow().clone();
        let result = match outcome {
            Ok(calls) => Ok(Executed { calls, logs, took: started.elapsed() }),
            Err(Failure::Thrown(_)) if self.interrupted.load(Ordering::Relaxed) => {
                Err(ScriptFailure::TimedOut { limit: limits.time, logs })
            }
            Err(Failure::Late) => Err(ScriptFailure::TimedOut { limit: limits.time, logs }),
            Err(Failure::Thrown(message)) if is_out_of_memory(&message) => Err(ScriptFailure::OutOfMemory { logs }),
            // The message goes to the log and to the client: no secret in it either.
            Err(Failure::Thrown(message)) => Err(ScriptFailure::Threw { message: state.redact(&message), logs }),
            Err(Failure::Stuck) => Err(ScriptFailure::NeverSettled { logs }),
        };
        if matches!(result, Err(ScriptFailure::TimedOut { .. } | ScriptFailure::OutOfMemory { .. })) {
            self.spoiled = true;
        } else {
            self.runtime.run_gc();
        }
        result
    }
}

pub(crate) struct Armed<'a>(&'a Sandbox);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

fn is_out_of_memory(message: &str) -> bool {
    message.contains("out of memory") || message.contains("Allocation")
}

/// What the host functions of one execution share.
pub(crate) struct HostState {
    pub logs: RefCell<Vec<LogLine>>,
    /// Values never shown in a log line.
    pub secrets: Vec<String>,
    pub deadline: Instant,
}

impl HostState {
    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        let mut logs = self.logs.borrow_mut();
        if logs.len() > LOG_LINES {
            return;
        }
        if logs.len() == LOG_LINES {
            let message = format!("(more than {LOG_LINES} lines: the rest are not kept)");
            logs.push(LogLine { level: LogLevel::Warn, message });
            return;
        }
        let line: String = self.redact(message).chars().take(LOG_LINE_LIMIT).collect();
        logs.push(LogLine { level, message: line });
    }

    /// `text` with every secret value replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
        out
    }

    pub(crate) fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

enum Failure {
    Thrown(String),
    /// The deadline passed while waiting (for a timer), not while running.
    Late,
    /// Nothing left to run and the handler's promise still pending.
    Stuck,
}

impl From<rquickjs::Error> for Failure {
    fn from(e: rquickjs::Error) -> Self {
        Failure::Thrown(e.to_string())
    }
}

/// What a thrown value says: an error's message, or the value as a string.
pub(crate) fn caught(ctx: &Ctx<'_>, e: rquickjs::Error) -> String {
    if !matches!(e, rquickjs::Error::Exception) {
        return e.to_string();
    }
    describe(ctx, &ctx.catch())
}

pub(crate) fn describe<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> String {
    if let Some(obj) = v.as_object()
        && let Ok(Some(message)) = obj.get::<_, Option<String>>("message")
    {
        return message;
    }
    let as_string = ctx.globals().get::<_, Function>("String").and_then(|f| f.call::<_, String>((v.clone(),)));
    as_string.unwrap_or_else(|_| "an exception that cannot be shown".to_owned())
}

fn catching<'js, T>(ctx: &Ctx<'js>, r: rquickjs::Result<T>) -> Result<T, Failure> {
    r.map_err(|e| Failure::Thrown(caught(ctx, e)))
}

/// The prelude's tools: `require`, the timers' controls, and `load` for the parts of
/// the prelude parsed on first use.
pub(crate) struct Tools<'js> {
    pub require: Function<'js>,
    pub timers: Object<'js>,
    pub load: Function<'js>,
}

/// Evaluates the prelude with the host's functions.
pub(crate) fn prelude<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<HostState>,
    http: &Rc<Http>,
    vendors: &VendorUrls,
) -> rquickjs::Result<Tools<'js>> {
    let host = host::functions(ctx, state, http, vendors)?;
    let f: Function = ctx.eval(PRELUDE)?;
    let tools: Object = f.call((host,))?;
    Ok(Tools { require: tools.get("require")?, timers: tools.get("timers")?, load: tools.get("load")? })
}

/// Loads the action's code as a CommonJS module and answers its `module.exports`.
pub(crate) fn load<'js>(ctx: &Ctx<'js>, code: &str, require: &Function<'js>) -> rquickjs::Result<Object<'js>> {
    // On a line of its own, so the code's line numbers are the author's, plus one.
    let wrapped = format!("(function (exports, require, module, __filename, __dirname) {{\n{code}\n}})");
    let mut options = EvalOptions::default();
    options.strict = false;
    options.filename = Some(FILE.to_owned());
    let factory: Function = ctx.eval_with_options(wrapped, options)?;
    let module = Object::new(ctx.clone())?;
    let exports = Object::new(ctx.clone())?;
    module.set("exports", exports.clone())?;
    factory.call::<_, ()>((exports, require.clone(), module.clone(), FILE, "/"))?;
    module.get("exports")
}

fn execute(
    ctx: &Ctx<'_>,
    ex: &Execution,
    state: &Rc<HostState>,
    http: &Rc<Http>,
    vendors: &VendorUrls,
) -> Result<Vec<ApiCall>, Failure> {
    let tools = catching(ctx, prelude(ctx, state, http, vendors))?;
    let exports = catching(ctx, load(ctx, &ex.code, &tools.require))?;
    let handler: Value = catching(ctx, exports.get(ex.handler))?;
    let Some(handler) = handler.as_function().cloned() else {
        return Err(Failure::Thrown(format!("The action does not export {}.", ex.handler)));
    };

    let mut event = ex.event.clone();
    if let Some(obj) = event.as_object_mut() {
        let secrets = ex.secrets.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().to_owned())));
        obj.insert("secrets".into(), serde_json::Value::Object(secrets.collect()));
    }
    let event = catching(ctx, ctx.json_parse(event.to_string()))?;
    let data = catching(ctx, ctx.json_parse(ex.api_data.to_string()))?;
    let (record, calls) = catching(ctx, recorder(ctx))?;
    let api_source = match ex.trigger {
        Trigger::PostLogin => POST_LOGIN_API,
        Trigger::SendPhoneMessage | Trigger::CustomPhoneProvider => PHONE_API,
    };
    let make_api: Function = catching(ctx, ctx.eval(api_source))?;
    let api: Value = catching(ctx, make_api.call((event.clone(), data, record, tools.load.clone())))?;

    let returned: Value = catching(ctx, handler.call((event, api)))?;
    if let Some(promise) = returned.as_promise() {
        settle(ctx, promise, &tools.timers, state)?;
    }
    let recorded = catching(ctx, ctx.json_stringify(calls))?;
    let recorded = match recorded {
        Some(s) => catching(ctx, s.to_string())?,
        None => "[]".to_owned(),
    };
    let calls: Vec<serde_json::Value> = serde_json::from_str(&recorded).map_err(|e| Failure::Thrown(e.to_string()))?;
    Ok(calls
        .into_iter()
        .map(|c| ApiCall {
            name: c["name"].as_str().unwrap_or_default().to_owned(),
            args: c["args"].as_array().cloned().unwrap_or_default(),
        })
        .collect())
}

/// A function that records `(name, args)` into an array, copied as JSON so later
/// changes to an object passed in are not seen.
fn recorder<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<(Function<'js>, Value<'js>)> {
    let pair: Object = ctx.eval(
        "(() => { const calls = []; \
          const record = (name, args) => { calls.push({ name, args: JSON.parse(JSON.stringify(args === undefined ? [] : args)) }); }; \
          return { calls, record }; })()",
    )?;
    Ok((pair.get("record")?, pair.get("calls")?))
}

/// Runs the job queue and the timers until the handler's promise settles.
fn settle<'js>(
    ctx: &Ctx<'js>,
    promise: &rquickjs::Promise<'js>,
    timers: &Object<'js>,
    state: &HostState,
) -> Result<(), Failure> {
    let next: Function = catching(ctx, timers.get("next"))?;
    let fire: Function = catching(ctx, timers.get("fire"))?;
    loop {
        match promise.state() {
            PromiseState::Resolved => return Ok(()),
            PromiseState::Rejected => {
                let e = promise.result::<Value>().and_then(Result::err).unwrap_or(rquickjs::Error::Exception);
                return Err(Failure::Thrown(caught(ctx, e)));
            }
            PromiseState::Pending => {}
        }
        if ctx.execute_pending_job() {
            continue;
        }
        let wait: f64 = catching(ctx, next.call(()))?;
        if wait < 0.0 {
            return Err(Failure::Stuck);
        }
        let wait = Duration::from_millis(wait as u64);
        if wait >= state.time_left() {
            std::thread::sleep(state.time_left());
            return Err(Failure::Late);
        }
        std::thread::sleep(wait);
        catching(ctx, fire.call::<_, ()>(()))?;
    }
}
