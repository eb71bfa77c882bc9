use tessera_core::Timestamp;
use tessera_core::apikey::ApiKey;
use tessera_core::ids::{ApplicationId, TenantId, UserId};
use tessera_core::store::{Application, Bootstrap, Store, Tenant, TenantStore};
use tessera_core::user::{Email, User, Username};
use tessera_store::{Backend, SqlStore, StoreOptions};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

pub struct Ctx {
    pub store: SqlStore,
    /// For tests that must reach past the store (break a table, count raw rows).
    pub url: String,
    pub tenant: TenantId,
    pub app: ApplicationId,
}

async fn open(backend: Backend, version: i64) -> Ctx {
    let url = tessera_store::testing::fresh_database_url(backend).await.unwrap();
    let store = tessera_store::open(&url, &StoreOptions::default()).await.unwrap();
    store.migrate_to(version).await.unwrap();
    let tenant = Tenant { id: TenantId::random(), name: "t".into(), created_at: T0 };
    let app = Application {
        id: ApplicationId::random(),
        tenant_id: tenant.id,
        name: "a".into(),
        created_at: T0,
        active: true,
    };
    let (_, api_key) = ApiKey::generate(tenant.id, "k", T0).unwrap();
    let (tenant_id, app_id) = (tenant.id, app.id);
    assert!(store.bootstrap(&Bootstrap { tenant, application: app, api_key }).await.unwrap());
    Ctx { store, url, tenant: tenant_id, app: app_id }
}

/// Runs the body once per backend, naming the backend in any failure.
macro_rules! contract {
    ($name:ident, |$ctx:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($ctx: $crate::support::Ctx) $body

            #[tokio::test]
            async fn sqlite() {
                run($crate::support::ctx(tessera_store::Backend::Sqlite).await).await
            }

            #[tokio::test]
            async fn postgres() {
                run($crate::support::ctx(tessera_store::Backend::Postgres).await).await
            }
        }
    };
}
pub(crate) use contract;

pub async fn ctx(backend: Backend) -> Ctx {
    open(backend, i64::MAX).await
}

/// A database as the release with migrations up to `version` left it.
pub async fn ctx_at(backend: Backend, version: i64) -> Ctx {
    open(backend, version).await
}

pub fn user(tenant: TenantId, email: &str) -> User {
    User {
        id: UserId::random(),
        tenant_id: tenant,
        email: Email::parse(email),
        username: None,
        mobile_phone: None,
        first_name: Some("Ann".into()),
        last_name: None,
        data: serde_json::Map::new(),
        active: true,
        email_verified: false,
        password_hash: None,
        created_at: T0,
        updated_at: T0,
    }
}

pub fn with_username(mut u: User, name: &str) -> User {
    u.username = Username::parse(name);
    u
}

#[allow(dead_code)]
pub fn as_dyn(s: &SqlStore) -> &dyn Store {
    s
}
