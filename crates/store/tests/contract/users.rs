use serde_json::json;
use tessera_core::ids::UserId;
use tessera_core::password::{HashParams, Password, Workspace};
use tessera_core::phone::PhoneNumber;
use tessera_core::store::{StoreError, UserStore};
use tessera_core::user::LoginId;

use crate::support::*;

contract!(insert_then_read_back_every_field, |c| {
    let mut u = with_username(user(c.tenant, "ann@example.com"), "Ann.Smith");
    u.mobile_phone = PhoneNumber::parse("+15554443232").ok();
    u.data = json!({"plan": "pro", "n": [1, 2]}).as_object().unwrap().clone();
    let params = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    u.password_hash = Some(Workspace::default().hash(&params, &Password::new("pw")).unwrap());
    c.store.insert_user(&u).await.unwrap();
    let got = c.store.get_user(c.tenant, u.id).await.unwrap().unwrap();
    assert_eq!(got.email, u.email);
    assert_eq!(got.username.as_ref().map(|n| n.as_str()), Some("Ann.Smith"));
    assert_eq!(got.mobile_phone.as_ref().map(|p| p.as_str()), Some("+15554443232"));
    assert_eq!(got.data["n"], json!([1, 2]));
    assert_eq!(got.password_hash, u.password_hash);
    assert_eq!((got.created_at, got.active), (T0, true));
});

contract!(login_id_matches_email_or_username_ignoring_case, |c| {
    let u = with_username(user(c.tenant, "ann@example.com"), "AnnS");
    c.store.insert_user(&u).await.unwrap();
    for id in ["ANN@example.com", "anns", "AnnS"] {
        let found = c.store.find_user_by_login_id(c.tenant, &LoginId::parse(id).unwrap()).await.unwrap();
        assert_eq!(found.map(|f| f.id), Some(u.id), "{id}");
    }
    let none = c.store.find_user_by_login_id(c.tenant, &LoginId::parse("bob").unwrap()).await.unwrap();
    assert!(none.is_none());
    let other_tenant = tessera_core::ids::TenantId::random();
    let none = c.store.find_user_by_login_id(other_tenant, &LoginId::parse("anns").unwrap()).await.unwrap();
    assert!(none.is_none(), "tenants are isolated");
});

contract!(duplicates_name_the_field, |c| {
    c.store.insert_user(&with_username(user(c.tenant, "a@example.com"), "Same")).await.unwrap();
    let dup_email = c.store.insert_user(&user(c.tenant, "a@example.com")).await;
    assert_eq!(dup_email, Err(StoreError::Conflict("user.email".into())));
    let dup_name = c.store.insert_user(&with_username(user(c.tenant, "b@example.com"), "same")).await;
    assert_eq!(dup_name, Err(StoreError::Conflict("user.username".into())));
});

contract!(update_and_delete, |c| {
    let mut u = user(c.tenant, "a@example.com");
    c.store.insert_user(&u).await.unwrap();
    u.first_name = None;
    u.active = false;
    u.updated_at = T0.plus(std::time::Duration::from_secs(5));
    assert!(c.store.update_user(&u).await.unwrap());
    let got = c.store.get_user(c.tenant, u.id).await.unwrap().unwrap();
    assert_eq!((got.first_name, got.active, got.updated_at), (None, false, u.updated_at));
    let mut ghost = user(c.tenant, "ghost@example.com");
    ghost.id = UserId::random();
    assert!(!c.store.update_user(&ghost).await.unwrap());
    assert!(c.store.delete_user(c.tenant, u.id).await.unwrap());
    assert!(c.store.get_user(c.tenant, u.id).await.unwrap().is_none());
    assert!(!c.store.delete_user(c.tenant, u.id).await.unwrap());
});
