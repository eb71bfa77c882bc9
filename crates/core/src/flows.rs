//! Flows: Twilio Studio flow definitions, imported unchanged, validated, and run
//! step by step. The engine is pure; HTTP calls and messages go through
//! [`FlowEffects`], and each step is handed back to be recorded.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::ids::TenantId;
use crate::validation::ValidationErrors;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Form,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionKind {
    EqualTo,
    NotEqualTo,
    Contains,
    StartsWith,
    MatchesAnyOf,
    IsBlank,
    Regex,
}

impl ConditionKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "equal_to" => ConditionKind::EqualTo,
            "not_equal_to" => ConditionKind::NotEqualTo,
            "contains" => ConditionKind::Contains,
            "starts_with" => ConditionKind::StartsWith,
            "matches_any_of" => ConditionKind::MatchesAnyOf,
            "is_blank" => ConditionKind::IsBlank,
            "regex" => ConditionKind::Regex,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Condition {
    pub kind: ConditionKind,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Condition {
    /// Studio compares case-insensitively.
    pub fn holds(&self, input: &str) -> bool {
        let (i, v) = (input.trim().to_lowercase(), self.value.trim().to_lowercase());
        match self.kind {
            ConditionKind::EqualTo => i == v,
            ConditionKind::NotEqualTo => i != v,
            ConditionKind::Contains => i.contains(&v),
            ConditionKind::StartsWith => i.starts_with(&v),
            ConditionKind::MatchesAnyOf => v.split(',').any(|x| x.trim() == i),
            ConditionKind::IsBlank => i.is_empty(),
            ConditionKind::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(input)),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Widget {
    Trigger,
    HttpRequest {
        method: HttpMethod,
        url: String,
        body_type: BodyType,
        body: Option<String>,
        parameters: Vec<(String, String)>,
        headers: Vec<(String, String)>,
    },
    SendMessage {
        body: String,
        to: Option<String>,
        from: Option<String>,
    },
    Split {
        input: String,
        /// Transitions with conditions, in order; all conditions of one must hold.
        matches: Vec<(Vec<Condition>, Option<String>)>,
    },
    SetVariables {
        variables: Vec<(String, String)>,
    },
}

impl Widget {
    pub fn type_name(&self) -> &'static str {
        match self {
            Widget::Trigger => "trigger",
            Widget::HttpRequest { .. } => "make-http-request",
            Widget::SendMessage { .. } => "send-message",
            Widget::Split { .. } => "split-based-on",
            Widget::SetVariables { .. } => "set-variables",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FlowState {
    pub name: String,
    pub widget: Widget,
    /// event → next state (`None`: the flow ends there).
    pub next: BTreeMap<String, Option<String>>,
}

/// A validated flow. `source` is the definition exactly as imported.
#[derive(Clone, Debug)]
pub struct Flow {
    pub initial: String,
    pub states: BTreeMap<String, FlowState>,
    pub source: Value,
}

fn text(props: &Value, key: &str) -> Option<String> {
    props.get(key).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty())
}

fn pairs(props: &Value, key: &str) -> Vec<(String, String)> {
    props
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p.get("key")?.as_str()?.to_owned(),
                        p.get("value").and_then(Value::as_str).unwrap_or("").to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renders a Liquid template against the run's context.
pub fn render(template: &str, context: &Value) -> Result<String, String> {
    let parser = liquid::ParserBuilder::with_stdlib().build().map_err(|e| e.to_string())?;
    let t = parser.parse(template).map_err(|e| e.to_string())?;
    let globals = liquid::to_object(context).map_err(|e| e.to_string())?;
    t.render(&globals).map_err(|e| e.to_string())
}

fn check_template(errors: &mut ValidationErrors, field: &str, template: &str) {
    let parser = match liquid::ParserBuilder::with_stdlib().build() {
        Ok(p) => p,
        Err(_) => return,
    };
    if let Err(e) = parser.parse(template) {
        errors.add(field, "invalidTemplate", format!("The Liquid template in [{field}] does not parse: {e}"));
    }
}

impl Flow {
    /// Parses and checks a Studio flow definition: every state's type is supported,
    /// every transition leads to a state that exists, the initial state exists, and
    /// every template parses. Errors name the state.
    pub fn parse(definition: &Value) -> Result<Flow, ValidationErrors> {
        let mut e = ValidationErrors::default();
        let states = definition.get("states").and_then(Value::as_array).cloned().unwrap_or_default();
        if states.is_empty() {
            e.add("states", "blank", "The flow has no [states].");
        }
        let names: Vec<String> =
            states.iter().filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned)).collect();
        let initial = definition.get("initial_state").and_then(Value::as_str).unwrap_or_default().to_owned();
        if initial.is_empty() {
            e.add("initial_state", "blank", "The flow has no [initial_state].");
        } else if !names.contains(&initial) {
            e.add("initial_state", "missing", format!("The initial state [{initial}] is not one of the states."));
        }
        let mut out = BTreeMap::new();
        for (i, s) in states.iter().enumerate() {
            let Some(name) = s.get("name").and_then(Value::as_str).map(str::to_owned) else {
                e.add(&format!("states[{i}].name"), "blank", format!("State {i} has no name."));
                continue;
            };
            let field = |k: &str| format!("states.{name}.{k}");
            let props = s.get("properties").cloned().unwrap_or(Value::Object(Map::new()));
            let transitions = s.get("transitions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut next = BTreeMap::new();
            for t in &transitions {
                let event = t.get("event").and_then(Value::as_str).unwrap_or_default().to_owned();
                let target = t.get("next").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned);
                if let Some(n) = &target
                    && !names.contains(n)
                {
                    e.add(
                        &field("transitions"),
                        "dangling",
                        format!("State [{name}] goes to [{n}] on [{event}], and there is no state [{n}]."),
                    );
                }
                if event != "match" {
                    next.insert(event, target);
                }
            }
            let kind = s.get("type").and_then(Value::as_str).unwrap_or_default();
            let widget = match kind {
                "trigger" => Widget::Trigger,
                "make-http-request" => {
                    let method =
                        match text(&props, "method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase().as_str() {
                            "GET" => HttpMethod::Get,
                            "POST" => HttpMethod::Post,
                            other => {
                                e.add(
                                    &field("method"),
                                    "unsupported",
                                    format!("State [{name}]: method {other} is not supported (GET, POST)."),
                                );
                                HttpMethod::Get
                            }
                        };
                    let url = text(&props, "url").unwrap_or_default();
                    if url.is_empty() {
                        e.add(&field("url"), "blank", format!("State [{name}] has no url."));
                    }
                    check_template(&mut e, &field("url"), &url);
                    let body_type = if text(&props, "content_type")
                        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
                    {
                        BodyType::Form
                    } else {
                        BodyType::Json
                    };
                    let body = text(&props, "body");
                    if let Some(b) = &body {
                        check_template(&mut e, &field("body"), b);
                    }
                    Widget::HttpRequest {
                        method,
                        url,
                        body_type,
                        body,
                        parameters: pairs(&props, "parameters"),
                        headers: pairs(&props, "headers"),
                    }
                }
                "send-message" => {
                    let body = text(&props, "body").unwrap_or_default();
                    if body.is_empty() {
                        e.add(&field("body"), "blank", format!("State [{name}] has no message body."));
                    }
                    check_template(&mut e, &field("body"), &body);
                    Widget::SendMessage { body, to: text(&props, "to"), from: text(&props, "from") }
                }
                "split-based-on" => {
                    let input = text(&props, "input").unwrap_or_default();
                    check_template(&mut e, &field("input"), &input);
                    let mut matches = Vec::new();
                    for t in transitions.iter().filter(|t| t.get("event").and_then(Value::as_str) == Some("match")) {
                        let mut conds = Vec::new();
                        for c in t.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default() {
                            let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
                            let value = c.get("value").and_then(Value::as_str).unwrap_or_default().to_owned();
                            let Some(kind) = ConditionKind::parse(ty) else {
                                e.add(
                                    &field("conditions"),
                                    "unsupported",
                                    format!("State [{name}]: condition type [{ty}] is not supported."),
                                );
                                continue;
                            };
                            let regex = if kind == ConditionKind::Regex {
                                match regex::Regex::new(&value) {
                                    Ok(r) => Some(r),
                                    Err(_) => {
                                        e.add(
                                            &field("conditions"),
                                            "invalid",
                                            format!("State [{name}]: [{value}] is not a valid regex."),
                                        );
                                        None
                                    }
                                }
                            } else {
                                None
                            };
                            conds.push(Condition { kind, value, regex });
                        }
                        let target = t.get("next").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned);
                        matches.push((conds, target));
                    }
                    Widget::Split { input, matches }
                }
                "set-variables" => {
                    let variables = pairs(&props, "variables");
                    for (k, v) in &variables {
                        check_template(&mut e, &field(&format!("variables.{k}")), v);
                    }
                    Widget::SetVariables { variables }
                }
                other => {
                    e.add(&field("type"), "unsupported", format!("State [{name}] has type [{other}], which Tessera does not run; nothing is ignored, so the flow is refused."));
                    continue;
                }
            };
            out.insert(name.clone(), FlowState { name, widget, next });
        }
        e.into_result(|| Flow { initial, states: out, source: definition.clone() })
    }
}

/// An outbound HTTP call a flow makes.
#[derive(Clone, Debug)]
pub struct HttpCall {
    pub method: HttpMethod,
    pub url: String,
    pub body_type: BodyType,
    pub body: Option<String>,
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct HttpOutcome {
    pub status: Option<u16>,
    pub body: String,
    pub content_type: Option<String>,
    pub latency_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
}

#[async_trait]
pub trait FlowEffects: Send + Sync {
    async fn http(&self, call: HttpCall) -> HttpOutcome;
    /// Sends a text through the messengers of `tenant` (the flow's).
    async fn send_message(
        &self,
        tenant: TenantId,
        to: &str,
        from: Option<&str>,
        body: &str,
    ) -> Result<Option<String>, String>;
}

/// What one step did, for the run's record.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    pub state: String,
    pub widget: String,
    pub event: String,
    pub http_status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

impl StepRecord {
    pub fn to_json(&self) -> Value {
        json!({"state": self.state, "widget": self.widget, "event": self.event, "httpStatus": self.http_status,
               "latencyMs": self.latency_ms, "error": self.error})
    }
}

/// The first run of 4 to 10 digits: what "redact all but the code" keeps.
pub fn extract_code(text: &str) -> Option<String> {
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            if (4..=10).contains(&run.len()) {
                return Some(run);
            }
            run.clear();
        }
    }
    None
}

/// The Liquid context of a run started by an inbound message, with Studio's names.
pub fn message_context(flow_sid: &str, message: &Map<String, Value>) -> Value {
    let mut m = message.clone();
    let body = m.get("Body").and_then(Value::as_str).unwrap_or_default().to_owned();
    // Tessera's addition: the code in the message, for "redact all but the code".
    m.insert("Code".into(), json!(extract_code(&body).unwrap_or_default()));
    let from = m.get("From").cloned().unwrap_or(Value::Null);
    let to = m.get("To").cloned().unwrap_or(Value::Null);
    json!({
        "trigger": {"message": m},
        "flow": {"flow_sid": flow_sid, "variables": {}, "channel": {"address": to}},
        "contact": {"channel": {"address": from}},
        "widgets": {},
    })
}

/// Every string in `v`, JSON-escaped (without quotes): rendering a JSON body with
/// these keeps it valid JSON whatever the message says.
fn json_escaped(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let quoted = Value::String(s.clone()).to_string();
            Value::String(quoted[1..quoted.len() - 1].to_owned())
        }
        Value::Array(a) => Value::Array(a.iter().map(json_escaped).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), json_escaped(v))).collect()),
        other => other.clone(),
    }
}

pub const MAX_STEPS: usize = 100;

/// Runs one state. Returns the record and the next state (`None`: the run ends).
pub async fn step(
    flow: &Flow,
    tenant: TenantId,
    current: &str,
    context: &mut Value,
    effects: &dyn FlowEffects,
) -> (StepRecord, Option<String>) {
    let Some(state) = flow.states.get(current) else {
        let rec = StepRecord {
            state: current.into(),
            widget: "?".into(),
            event: "failed".into(),
            http_status: None,
            latency_ms: None,
            error: Some("no such state".into()),
        };
        return (rec, None);
    };
    let mut rec = StepRecord {
        state: state.name.clone(),
        widget: state.widget.type_name().into(),
        event: String::new(),
        http_status: None,
        latency_ms: None,
        error: None,
    };
    let follow = |event: &str| state.next.get(event).cloned().flatten();
    let next = match &state.widget {
        Widget::Trigger => {
            rec.event = "incomingMessage".into();
            follow("incomingMessage")
        }
        Widget::SetVariables { variables } => {
            for (k, v) in variables {
                match render(v, context) {
                    Ok(value) => {
                        if let Some(vars) = context.pointer_mut("/flow/variables").and_then(Value::as_object_mut) {
                            vars.insert(k.clone(), json!(value));
                        }
                    }
                    Err(err) => rec.error = Some(err),
                }
            }
            rec.event = "next".into();
            follow("next")
        }
        Widget::Split { input, matches } => {
            let value = render(input, context).unwrap_or_default();
            match matches.iter().find(|(conds, _)| !conds.is_empty() && conds.iter().all(|c| c.holds(&value))) {
                Some((_, target)) => {
                    rec.event = "match".into();
                    target.clone()
                }
                None => {
                    rec.event = "noMatch".into();
                    follow("noMatch")
                }
            }
        }
        Widget::SendMessage { body, to, from } => {
            let rendered = render(body, context);
            let to = to
                .as_deref()
                .map(|t| render(t, context).unwrap_or_default())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| {
                    context.pointer("/contact/channel/address").and_then(Value::as_str).unwrap_or_default().to_owned()
                });
            let from = from.as_deref().map(|f| render(f, context).unwrap_or_default()).filter(|f| !f.is_empty());
            let sent = match rendered {
                Ok(text) => effects.send_message(tenant, &to, from.as_deref(), &text).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(_) => {
                    rec.event = "sent".into();
                    follow("sent")
                }
                Err(e) => {
                    rec.error = Some(e);
                    rec.event = "failed".into();
                    follow("failed")
                }
            }
        }
        Widget::HttpRequest { method, url, body_type, body, parameters, headers } => {
            let r = |t: &str| render(t, context);
            let escaped = json_escaped(context);
            let call = (|| {
                Ok::<_, String>(HttpCall {
                    method: *method,
                    url: r(url)?,
                    body_type: *body_type,
                    body: match (body, body_type) {
                        (Some(b), BodyType::Json) => Some(render(b, &escaped)?),
                        (Some(b), BodyType::Form) => Some(r(b)?),
                        (None, _) => None,
                    },
                    form: parameters.iter().map(|(k, v)| Ok((k.clone(), r(v)?))).collect::<Result<_, String>>()?,
                    headers: headers.iter().map(|(k, v)| Ok((k.clone(), r(v)?))).collect::<Result<_, String>>()?,
                })
            })();
            let outcome = match call {
                Ok(call) => effects.http(call).await,
                Err(e) => HttpOutcome { error: Some(e), ..HttpOutcome::default() },
            };
            rec.http_status = outcome.status;
            rec.latency_ms = Some(outcome.latency_ms);
            rec.error = outcome.error.clone();
            let parsed: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
            if let Some(w) = context.get_mut("widgets").and_then(Value::as_object_mut) {
                w.insert(
                    state.name.clone(),
                    json!({"status_code": outcome.status, "body": outcome.body, "content_type": outcome.content_type, "parsed": parsed}),
                );
            }
            let ok = outcome.error.is_none() && outcome.status.is_some_and(|s| (200..300).contains(&s));
            rec.event = if ok { "success" } else { "failed" }.into();
            follow(&rec.event)
        }
    };
    (rec, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack_flow() -> Value {
        json!({
            "description": "Forward SMS to Slack",
            "states": [
                {"name": "Trigger", "type": "trigger", "transitions": [
                    {"event": "incomingMessage", "next": "post_to_slack"}, {"event": "incomingCall"}, {"event": "incomingRequest"}],
                 "properties": {"offset": {"x": 0, "y": 0}}},
                {"name": "post_to_slack", "type": "make-http-request", "transitions": [{"event": "success"}, {"event": "failed"}],
                 "properties": {"offset": {"x": 0, "y": 200}, "method": "POST", "content_type": "application/json;charset=utf-8",
                                "body": "{\"text\": \"{{trigger.message.Body}}\"}", "url": "https://hooks.slack.com/services/T/B/X"}}
            ],
            "initial_state": "Trigger",
            "flags": {"allow_concurrent_calls": true}
        })
    }

    #[test]
    fn parses_a_studio_export() {
        let flow = Flow::parse(&slack_flow());
        assert!(flow.is_ok(), "{:?}", flow.as_ref().err());
        let Ok(flow) = flow else { return };
        assert_eq!(flow.initial, "Trigger");
        assert_eq!(flow.states["Trigger"].next["incomingMessage"].as_deref(), Some("post_to_slack"));
        assert!(matches!(
            flow.states["post_to_slack"].widget,
            Widget::HttpRequest { method: HttpMethod::Post, body_type: BodyType::Json, .. }
        ));
    }

    #[test]
    fn validation_names_the_state() {
        let mut bad = slack_flow();
        bad["states"][1]["type"] = json!("run-function");
        bad["states"][0]["transitions"][0]["next"] = json!("nowhere");
        bad["initial_state"] = json!("Start");
        let e = Flow::parse(&bad).err().unwrap_or_default();
        let messages: Vec<String> = e.fields.values().flatten().map(|p| p.message.clone()).collect();
        assert!(messages.iter().any(|m| m.contains("[post_to_slack] has type [run-function]")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("State [Trigger] goes to [nowhere]")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("initial state [Start]")), "{messages:?}");
    }

    #[test]
    fn liquid_uses_studio_names_and_json_bodies_stay_valid() {
        let mut msg = Map::new();
        msg.insert("Body".into(), json!("Your code is 123456 \"quoted\""));
        msg.insert("From".into(), json!("+15550001111"));
        let ctx = message_context("FW1", &msg);
        assert_eq!(
            render("{{trigger.message.From}} / {{trigger.message.Code}}", &ctx).as_deref(),
            Ok("+15550001111 / 123456")
        );
        let body = render("{\"text\": \"{{trigger.message.Body}}\"}", &json_escaped(&ctx)).unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(v["text"], "Your code is 123456 \"quoted\"");
    }

    #[test]
    fn conditions() {
        let c = |kind, value: &str| Condition { kind, value: value.into(), regex: regex::Regex::new(value).ok() };
        assert!(c(ConditionKind::EqualTo, "YES").holds(" yes "));
        assert!(c(ConditionKind::NotEqualTo, "yes").holds("no"));
        assert!(c(ConditionKind::Contains, "code").holds("Your CODE is"));
        assert!(c(ConditionKind::StartsWith, "stop").holds("STOP now"));
        assert!(c(ConditionKind::MatchesAnyOf, "yes, y, ok").holds("Y"));
        assert!(c(ConditionKind::IsBlank, "").holds("  "));
        assert!(c(ConditionKind::Regex, r"^\d{6}$").holds("123456"));
        assert!(!c(ConditionKind::Regex, r"^\d{6}$").holds("12345"));
    }

    #[test]
    fn codes_are_found_in_messages() {
        assert_eq!(extract_code("Your Acme code is 482913. Don't share it."), Some("482913".into()));
        assert_eq!(extract_code("G-123456 is your Google code"), Some("123456".into()));
        assert_eq!(extract_code("no code here 12"), None);
    }
}
