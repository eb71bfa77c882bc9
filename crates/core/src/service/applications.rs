//! Applications (admin): each is an OAuth client with exact redirect URIs, a hashed
//! secret unless it is public, and a second-factor policy.

use std::sync::Arc;

use serde_json::json;

use super::RequestContext;
use super::kernel::Kernel;
use crate::apikey::Admin;
use crate::audit::AuditKind;
use crate::ids::ApplicationId;
use crate::oidc::{MfaPolicy, OAuthClient};
use crate::secret::Secret;
use crate::store::{Application, ApplicationStore};
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp, random};

/// Shortest client secret accepted from an admin (one moved from another server);
/// FusionAuth's own are 43 characters.
const MIN_GIVEN_SECRET: usize = 32;

/// What an admin sets on an application.
#[derive(Clone, Debug)]
pub struct ApplicationInput {
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// No secret: a single-page or native app, which must use PKCE.
    pub public: bool,
    pub mfa_policy: MfaPolicy,
    /// A secret to keep, so clients moved from another server work unchanged; without
    /// one, a confidential client that has none gets a new one.
    pub client_secret: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct ApplicationRecord {
    pub application: Application,
    pub client: OAuthClient,
}

/// An application as saved, and its secret when one was just made (shown only then).
pub type Saved = (ApplicationRecord, Option<Secret>);

fn validate(input: &ApplicationInput) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if input.name.trim().is_empty() {
        errors.add("application.name", "blank", "The application needs a [name].");
    }
    let field = "application.oauthConfiguration.authorizedRedirectURLs";
    for uri in &input.redirect_uris {
        if let Err(why) = crate::oidc::check_redirect_uri(uri) {
            errors.add(field, "invalid", format!("The redirect URL {uri:?} {why}."));
        }
    }
    if let Some(s) = &input.client_secret {
        let field = "application.oauthConfiguration.clientSecret";
        if input.public {
            errors.add(field, "notAllowed", "A public client (no client authentication) has no [clientSecret].");
        } else if s.expose().chars().count() < MIN_GIVEN_SECRET {
            errors.add(
                field,
                "tooShort",
                format!("The [clientSecret] must be at least {MIN_GIVEN_SECRET} characters."),
            );
        }
    }
    errors.into_result(|| ())
}

/// Applications of each tenant and their OAuth clients (FusionAuth's
/// `/api/application`), and what the rest asks of them: whether one may sign people in,
/// what a message calls it, the default one. It takes only the application store.
#[derive(Clone)]
pub struct Applications {
    store: Arc<dyn ApplicationStore>,
    kernel: Arc<Kernel>,
    /// What a sign-in that names no application is for; it can be neither deleted nor
    /// deactivated.
    default: Application,
}

impl Applications {
    pub fn new(store: Arc<dyn ApplicationStore>, kernel: Arc<Kernel>, default: Application) -> Applications {
        Applications { store, kernel, default }
    }

    pub fn default_application(&self) -> &Application {
        &self.default
    }

    /// The secret digest to store and the secret to show: none for a public client, the
    /// given one, the one it had, or a new one.
    fn client_secret(
        input: &ApplicationInput,
        had: Option<&str>,
    ) -> Result<(Option<String>, Option<Secret>), CoreError> {
        if input.public {
            return Ok((None, None));
        }
        if let Some(given) = &input.client_secret {
            return Ok((Some(given.digest()), None));
        }
        if let Some(digest) = had {
            return Ok((Some(digest.to_owned()), None));
        }
        let made = Secret::new(random::token(32)?);
        Ok((Some(made.digest()), Some(made)))
    }

    pub async fn create(
        &self,
        admin: &Admin,
        id: Option<ApplicationId>,
        input: ApplicationInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Saved, CoreError> {
        validate(&input)?;
        let id = id.unwrap_or_else(ApplicationId::random);
        let (secret_digest, shown) = Self::client_secret(&input, None)?;
        let application = Application {
            id,
            tenant_id: admin.tenant_id,
            name: input.name.trim().to_owned(),
            created_at: now,
            active: true,
        };
        let client = OAuthClient {
            id,
            tenant_id: admin.tenant_id,
            secret_digest,
            redirect_uris: input.redirect_uris,
            mfa_policy: input.mfa_policy,
        };
        if !self.store.insert_application(&application, &client).await? {
            let msg = "An application with this [applicationId] already exists.";
            return Err(ValidationErrors::field("applicationId", "duplicate", msg).into());
        }
        let detail = json!({"applicationId": id.to_string(), "name": application.name, "public": client.secret_digest.is_none()});
        self.kernel.audit(AuditKind::ApplicationCreated, None, "success", ctx, detail, now).await?;
        Ok((ApplicationRecord { application, client }, shown))
    }

    /// Replaces the application's settings (FusionAuth's PUT). A confidential client
    /// keeps its secret unless a new one is given.
    pub async fn update(
        &self,
        admin: &Admin,
        id: ApplicationId,
        input: ApplicationInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Saved, CoreError> {
        validate(&input)?;
        let existing = self.get(admin, id).await?.ok_or(CoreError::NotFound)?;
        let (secret_digest, shown) = Self::client_secret(&input, existing.client.secret_digest.as_deref())?;
        let application = Application { name: input.name.trim().to_owned(), ..existing.application };
        let client = OAuthClient {
            secret_digest,
            redirect_uris: input.redirect_uris,
            mfa_policy: input.mfa_policy,
            ..existing.client
        };
        if !self.store.update_application(&application, &client).await? {
            return Err(CoreError::NotFound);
        }
        // Whether the secret changed matters to whoever reads the log; the secret never.
        let secret_changed = existing.client.secret_digest != client.secret_digest;
        let detail =
            json!({"applicationId": id.to_string(), "name": application.name, "secretChanged": secret_changed});
        self.kernel.audit(AuditKind::ApplicationUpdated, None, "success", ctx, detail, now).await?;
        Ok((ApplicationRecord { application, client }, shown))
    }

    /// One application of the admin's tenant, active or not.
    pub async fn get(&self, admin: &Admin, id: ApplicationId) -> Result<Option<ApplicationRecord>, CoreError> {
        Ok(self.list(admin).await?.into_iter().find(|r| r.application.id == id))
    }

    /// FusionAuth's `DELETE /api/application/{id}`: deactivates it, or with `hard` removes
    /// it (its refresh tokens revoked, codes and open challenges gone). The default
    /// application can be neither: logins without an applicationId use it.
    pub async fn delete(
        &self,
        admin: &Admin,
        id: ApplicationId,
        hard: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        if id == self.default.id {
            let msg =
                "The default application cannot be deleted or deactivated: logins without an [applicationId] use it.";
            return Err(ValidationErrors::field("applicationId", "cannotDelete", msg).into());
        }
        let done = if hard {
            self.store.delete_application(admin.tenant_id, id, now).await?
        } else {
            self.store.set_application_active(admin.tenant_id, id, false).await?
        };
        if !done {
            return Err(CoreError::NotFound);
        }
        let outcome = if hard { "deleted" } else { "deactivated" };
        let detail = json!({"applicationId": id.to_string()});
        self.kernel.audit(AuditKind::ApplicationDeleted, None, outcome, ctx, detail, now).await
    }

    /// `PUT /api/application/{id}?reactivate=true`.
    pub async fn reactivate(
        &self,
        admin: &Admin,
        id: ApplicationId,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<ApplicationRecord, CoreError> {
        if !self.store.set_application_active(admin.tenant_id, id, true).await? {
            return Err(CoreError::NotFound);
        }
        let detail = json!({"applicationId": id.to_string(), "reactivated": true});
        self.kernel.audit(AuditKind::ApplicationUpdated, None, "success", ctx, detail, now).await?;
        self.get(admin, id).await?.ok_or(CoreError::NotFound)
    }

    /// What a code sent for a sign-in into `id` calls it; the default application's name
    /// if it is gone.
    pub async fn name_of(&self, id: ApplicationId) -> Result<String, CoreError> {
        // Read each time: the default one may have been renamed since this server started.
        Ok(self.store.get_application(id).await?.map_or_else(|| self.default.name.clone(), |a| a.name))
    }

    /// Whether an application may sign people in and refresh their tokens.
    pub async fn is_active(&self, id: ApplicationId) -> Result<bool, CoreError> {
        if id == self.default.id {
            return Ok(true);
        }
        Ok(self.store.get_application(id).await?.is_some_and(|a| a.active))
    }

    pub async fn list(&self, admin: &Admin) -> Result<Vec<ApplicationRecord>, CoreError> {
        let all = self.store.applications(admin.tenant_id).await?;
        Ok(all.into_iter().map(|(application, client)| ApplicationRecord { application, client }).collect())
    }
}
