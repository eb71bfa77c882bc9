//! The post-login actions as the sign-in pipeline's [`PostLogin`] port: Auth0's `event`
//! built from the sign-in, the bound actions run in order, and what they asked of `api`
//! turned into the pipeline's decision (go on, deny, send the browser away and resume)
//! and the state kept with the sign-in (claims, metadata, where to resume).

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::actions::{Actions, Ran, TriggerCall};
use super::applications::Applications;
use crate::CoreError;
use crate::actions::{ApiCall, Executed, Trigger};
use crate::signin::{AfterFirstFactor, AuthMethod, PostLogin, PostLoginCall, ScriptState};
use crate::twofactor::MethodKind;
use crate::verify::iso8601;

/// The `api` calls a post-login action may make today. Any other ends the sign-in
/// (fail-secure: an action asking for a second factor Tessera cannot yet give it must
/// not be let through without one).
const SUPPORTED: [&str; 9] = [
    "access.deny",
    "user.setAppMetadata",
    "user.setUserMetadata",
    "idToken.setCustomClaim",
    "accessToken.setCustomClaim",
    "transaction.setMetadata",
    "redirect.sendUserTo",
    "cache.set",
    "cache.delete",
];

pub struct ActionsPostLogin {
    actions: Actions,
    applications: Applications,
}

impl ActionsPostLogin {
    pub fn new(actions: Actions, applications: Applications) -> ActionsPostLogin {
        ActionsPostLogin { actions, applications }
    }
}

/// Auth0's name for a method passed: `pwd`, or an `mfa` entry with the factor's type.
fn method_entry(m: AuthMethod, at: &str) -> Option<Value> {
    let factor = match m {
        AuthMethod::Password => return Some(json!({"name": "pwd", "timestamp": at})),
        AuthMethod::Totp => "otp",
        AuthMethod::Sms | AuthMethod::Voice => "phone",
        AuthMethod::Email => "email",
        AuthMethod::RecoveryCode => "recovery-code",
        AuthMethod::TrustedDevice => return None,
    };
    Some(json!({"name": "mfa", "type": factor, "timestamp": at}))
}

fn object(v: Option<&Value>) -> Value {
    v.filter(|v| v.is_object()).cloned().unwrap_or_else(|| json!({}))
}

/// Auth0's post-login `event` for this sign-in.
fn event(call: &PostLoginCall<'_>, client: Value, protocol: &str) -> Value {
    let (u, s) = (call.user, call.sign_in);
    let at = iso8601(s.created_at);
    let methods: Vec<Value> = s.passed.iter().filter_map(|m| method_entry(m, &at)).collect();
    let enrolled: Vec<Value> = call
        .factors
        .iter()
        .map(|f| match &f.kind {
            MethodKind::Authenticator(_) => json!({"id": f.id.as_str(), "type": "otp"}),
            MethodKind::Sms { .. } => json!({"id": f.id.as_str(), "type": "phone"}),
        })
        .collect();
    let name = [u.first_name.as_deref(), u.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    json!({
        "user": {
            "user_id": u.id.to_string(),
            "email": u.email.as_ref().map(|e| e.as_str()),
            "email_verified": u.email_verified,
            "username": u.username.as_ref().map(|n| n.as_str()),
            "phone_number": u.mobile_phone.as_ref().map(|p| p.as_str()),
            "given_name": u.first_name,
            "family_name": u.last_name,
            "name": name,
            "app_metadata": object(u.data.get("app_metadata")),
            "user_metadata": object(u.data.get("user_metadata")),
            "enrolledFactors": enrolled,
            "multifactor": if call.factors.is_empty() { json!([]) } else { json!(["guardian"]) },
            "created_at": iso8601(u.created_at),
            "updated_at": iso8601(u.updated_at),
        },
        "authentication": { "methods": methods },
        "connection": {
            "id": "con_tessera_password",
            "name": "Username-Password-Authentication",
            "strategy": "auth0",
            "metadata": {},
        },
        "client": client,
        "request": {
            "ip": s.signals.ip,
            "user_agent": s.signals.user_agent,
            "method": if call.resumed.is_some() { "GET" } else { "POST" },
            "query": call.resumed.cloned().unwrap_or_default(),
            "body": {},
            "geoip": {},
        },
        "transaction": {
            "protocol": protocol,
            "requested_scopes": [],
            "metadata": s.scripts.metadata,
            "locale": "en",
        },
        "tenant": { "id": s.tenant_id.to_string() },
    })
}

/// What one action's calls mean for the sign-in, applied in the order made.
enum Decision {
    Continue,
    Deny(String),
    Redirect(String),
}

fn text(args: &[Value], i: usize) -> String {
    args.get(i).and_then(Value::as_str).map(str::to_owned).unwrap_or_default()
}

/// `user.setAppMetadata` / `setUserMetadata` calls, merged in order (`null` deletes),
/// written once when the actions are done.
#[derive(Default)]
struct MetadataChanges {
    app: Map<String, Value>,
    user: Map<String, Value>,
}

impl MetadataChanges {
    fn is_empty(&self) -> bool {
        self.app.is_empty() && self.user.is_empty()
    }
}

fn apply(calls: &[ApiCall], state: &mut ScriptState, metadata: &mut MetadataChanges) -> Decision {
    for c in calls {
        match c.name.as_str() {
            "user.setAppMetadata" => {
                metadata.app.insert(text(&c.args, 0), c.args.get(1).cloned().unwrap_or(Value::Null));
            }
            "user.setUserMetadata" => {
                metadata.user.insert(text(&c.args, 0), c.args.get(1).cloned().unwrap_or(Value::Null));
            }
            "access.deny" => {
                let reason = text(&c.args, 0);
                return Decision::Deny(if reason.is_empty() { "Access denied by an action.".into() } else { reason });
            }
            "idToken.setCustomClaim" => {
                state.id_claims.insert(text(&c.args, 0), c.args.get(1).cloned().unwrap_or(Value::Null));
            }
            "accessToken.setCustomClaim" => {
                state.access_claims.insert(text(&c.args, 0), c.args.get(1).cloned().unwrap_or(Value::Null));
            }
            "transaction.setMetadata" => {
                state.metadata.insert(text(&c.args, 0), c.args.get(1).cloned().unwrap_or(Value::Null));
            }
            "redirect.sendUserTo" => {
                let mut url = text(&c.args, 0);
                if let Some(query) = c.args.get(1).and_then(|o| o.get("query")).and_then(Value::as_object) {
                    let pairs: Vec<(String, String)> = query
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect();
                    if let Ok(q) = serde_urlencoded::to_string(&pairs)
                        && !q.is_empty()
                    {
                        url = format!("{url}{}{q}", if url.contains('?') { "&" } else { "?" });
                    }
                }
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Decision::Deny(format!(
                        "An action tried to redirect to {url:?}, which is not an http(s) URL."
                    ));
                }
                return Decision::Redirect(url);
            }
            // The cache lives only as long as the execution here; nothing to keep.
            "cache.set" | "cache.delete" => {}
            other => {
                return Decision::Deny(format!(
                    "An action called api.{other}, which Tessera does not support yet; the sign-in cannot go on without it."
                ));
            }
        }
    }
    Decision::Continue
}

/// Whether the flow stops after an action that did this.
fn stops(done: &Executed) -> bool {
    done.calls
        .iter()
        .any(|c| c.name == "access.deny" || c.name == "redirect.sendUserTo" || !SUPPORTED.contains(&c.name.as_str()))
}

#[async_trait]
impl PostLogin for ActionsPostLogin {
    async fn after_first_factor(&self, call: PostLoginCall<'_>) -> Result<(AfterFirstFactor, ScriptState), CoreError> {
        let mut state = call.sign_in.scripts.clone();
        let tenant = call.sign_in.tenant_id;
        let bound = self.actions.bound(tenant, Trigger::PostLogin).await?;
        if bound.is_empty() {
            return Ok((AfterFirstFactor::Continue, state));
        }
        // Back from a redirect: the action that sent the browser away goes on.
        let resume_at = call.resumed.and(state.resume_at);
        let client = json!({
            "client_id": call.sign_in.application_id.to_string(),
            "name": self.applications.name_of(call.sign_in.application_id).await?,
            "metadata": {},
        });
        let event = event(&call, client, call.protocol);
        let api_data = json!({
            "canRedirect": call.interactive,
            "issuer": self.actions.issuer(),
            "state": call.state,
            "now": call.now.millis(),
        });
        let trigger_call =
            TriggerCall { trigger: Trigger::PostLogin, handler: "onExecutePostLogin", event, api_data, resume_at };
        let run = self.actions.run_bound(tenant, bound, trigger_call, stops, call.now).await?;
        state.resume_at = None;
        let mut metadata = MetadataChanges::default();
        let mut decided = AfterFirstFactor::Continue;
        for Ran { position, done, .. } in &run.ran {
            match apply(&done.calls, &mut state, &mut metadata) {
                Decision::Continue => continue,
                Decision::Deny(reason) => decided = AfterFirstFactor::Deny { reason },
                Decision::Redirect(url) => {
                    state.resume_at = Some(*position);
                    decided = AfterFirstFactor::Redirect { url };
                }
            }
            break;
        }
        if let (AfterFirstFactor::Continue, Some((name, failure))) = (&decided, &run.failure) {
            decided = AfterFirstFactor::Deny { reason: format!("{} (action '{name}')", failure.description()) };
        }
        // Metadata asked for is kept whatever the outcome (Auth0: a denial does not undo it).
        if !metadata.is_empty() {
            let written =
                self.actions.merge_user_metadata(tenant, call.user.id, metadata.app, metadata.user, call.now).await?;
            if let Err(reason) = written {
                decided = AfterFirstFactor::Deny { reason };
            }
        }
        Ok((decided, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Value) -> ApiCall {
        ApiCall { name: name.into(), args: args.as_array().cloned().unwrap_or_default() }
    }

    #[test]
    fn calls_apply_in_order_and_the_first_deny_or_redirect_ends_the_action() {
        let mut state = ScriptState::default();
        let calls = [
            call("idToken.setCustomClaim", json!(["https://x/plan", "gold"])),
            call("accessToken.setCustomClaim", json!(["https://x/ip", "1.2.3.4"])),
            call("redirect.sendUserTo", json!(["https://partner.example/a", {"query": {"t": "x y"}}])),
            call("access.deny", json!(["never reached"])),
        ];
        let decided = apply(&calls, &mut state, &mut MetadataChanges::default());
        assert!(matches!(&decided, Decision::Redirect(url) if url == "https://partner.example/a?t=x+y"));
        assert_eq!(state.id_claims["https://x/plan"], "gold");
        assert_eq!(state.access_claims["https://x/ip"], "1.2.3.4");
        let denied = apply(&[call("access.deny", json!(["no"]))], &mut state, &mut MetadataChanges::default());
        assert!(matches!(&denied, Decision::Deny(reason) if reason == "no"));
    }

    #[test]
    fn an_unsupported_call_fails_the_sign_in_rather_than_being_dropped() {
        let mut state = ScriptState::default();
        let asks = call("authentication.challengeWith", json!([{"type": "otp"}]));
        let mut none = MetadataChanges::default();
        assert!(matches!(apply(&[asks], &mut state, &mut none), Decision::Deny(r) if r.contains("challengeWith")));
        let nowhere = call("redirect.sendUserTo", json!(["javascript:alert(1)"]));
        assert!(matches!(apply(&[nowhere], &mut state, &mut none), Decision::Deny(_)));
    }
}
