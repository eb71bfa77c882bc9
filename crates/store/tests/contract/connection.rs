//! How the store reaches PostgreSQL: over TLS when the URL asks for it, as managed
//! databases require.

use tessera_core::store::TenantStore;
use tessera_store::{Backend, StoreOptions};

#[tokio::test]
async fn postgres_is_reached_over_tls_when_the_url_requires_it() {
    let url = tessera_store::testing::fresh_database_url(Backend::Postgres).await.unwrap();
    let store = tessera_store::open(&format!("{url}&sslmode=require"), &StoreOptions::default())
        .await
        .expect("sslmode=require connects (the local server speaks TLS)");
    store.migrate().await.unwrap();
    assert_eq!(store.default_tenant().await.unwrap(), None, "a working connection");
    assert!(store.connection_uses_tls().await.unwrap(), "and it is encrypted");
}
