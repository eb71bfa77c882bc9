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

#[tokio::test]
async fn an_unreachable_postgres_is_named_without_its_password() {
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    let Err(err) = tessera_store::open("postgres://app:s3cret@127.0.0.1:1/tessera", &StoreOptions::default()).await
    else {
        panic!("no server listens there");
    };
    let text = err.to_string();
    assert!(text.contains("cannot connect to PostgreSQL at postgres://app:••••@127.0.0.1:1/tessera"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
