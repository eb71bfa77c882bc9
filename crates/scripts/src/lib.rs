//! Tessera's actions engine: Auth0-compatible JavaScript run in QuickJS (through
//! `rquickjs`, built from its bundled C source). A few engine threads each own one
//! runtime; every execution gets a fresh context with the memory limit, the wall-clock
//! limit and a queue that refuses work (`Busy`) rather than letting a sign-in storm
//! start unbounded engines. Implements core's [`ScriptRunner`].

mod check;
mod host;
mod http;
mod sandbox;

use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::actions::{CodeProblem, Executed, Execution, ScriptFailure, ScriptRunner, Trigger};
use tessera_providers::outbound::Outbound;
use tokio::sync::oneshot;

pub use check::CODE_LIMIT;
pub use sandbox::VendorUrls;

/// How the engine runs actions.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Engine threads, each with its own runtime: how many actions run at once.
    pub workers: usize,
    /// Executions that may wait for a thread; beyond that a run is refused as busy.
    pub queue: usize,
    /// Memory one execution may use (Auth0 does not say; 64 MiB).
    pub memory_limit: usize,
    /// Wall-clock time one execution may take (Auth0's 20 s).
    pub timeout: Duration,
    /// Hosts `fetch` may call although they are private or loopback.
    pub http_allowlist: Vec<String>,
    pub vendors: VendorUrls,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 2,
            queue: 256,
            memory_limit: 64 * 1024 * 1024,
            timeout: Duration::from_secs(20),
            http_allowlist: Vec::new(),
            vendors: VendorUrls {
                twilio_api: "https://api.twilio.com".into(),
                twilio_verify: "https://verify.twilio.com".into(),
                plivo_api: "https://api.plivo.com".into(),
            },
        }
    }
}

/// The stack a script may use: deep recursion ends with a RangeError, not a crash.
const STACK: usize = 512 * 1024;
/// Loading code at deploy is given less time than a sign-in.
const CHECK_TIME: Duration = Duration::from_secs(2);

enum Job {
    Run(Box<Execution>, oneshot::Sender<Result<Executed, ScriptFailure>>),
    Check(Trigger, String, oneshot::Sender<Result<(), CodeProblem>>),
}

pub struct Engine {
    jobs: SyncSender<Job>,
}

impl Engine {
    /// Starts the engine's threads.
    pub fn start(settings: Settings) -> Result<Engine, String> {
        let (jobs, queue) = sync_channel(settings.queue);
        let queue = Arc::new(Mutex::new(queue));
        let outbound = Outbound::new(settings.http_allowlist.clone(), "actions_http_allowlist");
        for n in 0..settings.workers.max(1) {
            let (queue, outbound, settings) = (queue.clone(), outbound.clone(), settings.clone());
            std::thread::Builder::new()
                .name(format!("actions-{n}"))
                .spawn(move || work(&queue, outbound, &settings))
                .map_err(|e| e.to_string())?;
        }
        Ok(Engine { jobs })
    }

    fn submit(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// One engine thread: takes jobs until the engine is dropped. Its runtime and HTTP
/// client are made with its first job, so a server whose tenants bind no actions pays
/// for neither.
fn work(queue: &Mutex<Receiver<Job>>, outbound: Outbound, settings: &Settings) {
    let mut http: Option<Rc<http::Http>> = None;
    let limits = sandbox::Limits { memory: settings.memory_limit, stack: STACK, time: settings.timeout };
    let mut current: Option<sandbox::Sandbox> = None;
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if current.as_ref().is_none_or(|s| s.spoiled) {
            current = match sandbox::Sandbox::new(&limits) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "the actions engine could not make a runtime");
                    None
                }
            };
        }
        if http.is_none() {
            http = match http::Http::new(outbound.clone()) {
                Ok(h) => Some(Rc::new(h)),
                Err(e) => {
                    tracing::error!(error = %e, "the actions engine could not start its HTTP client");
                    None
                }
            };
        }
        // Dropping the job's reply tells its caller the engine is unavailable.
        let (Some(sb), Some(http)) = (current.as_mut(), http.as_ref()) else { continue };
        match job {
            Job::Run(execution, reply) => {
                let result = sb.run(&execution, &limits, http, &settings.vendors);
                if let Err(failure) = &result {
                    tracing::warn!(trigger = execution.trigger.id(), failure = %failure, "an action failed");
                }
                let _ = reply.send(result);
            }
            Job::Check(trigger, code, reply) => {
                let quick = sandbox::Limits { time: CHECK_TIME.min(limits.time), ..limits.clone() };
                let _ = reply.send(check::check(sb, trigger, &code, &quick, http, &settings.vendors));
                sb.spoiled = true;
            }
        }
    }
}

#[async_trait]
impl ScriptRunner for Engine {
    async fn run(&self, execution: Execution) -> Result<Executed, ScriptFailure> {
        let (reply, answer) = oneshot::channel();
        if !self.submit(Job::Run(Box::new(execution), reply)) {
            return Err(ScriptFailure::Busy);
        }
        answer.await.unwrap_or(Err(ScriptFailure::Busy))
    }

    async fn check(&self, trigger: Trigger, code: &str) -> Result<(), CodeProblem> {
        let (reply, answer) = oneshot::channel();
        let busy =
            || CodeProblem { message: "The actions engine is busy; try again.".into(), line: None, column: None };
        if !self.submit(Job::Check(trigger, code.to_owned(), reply)) {
            return Err(busy());
        }
        answer.await.unwrap_or_else(|_| Err(busy()))
    }
}
