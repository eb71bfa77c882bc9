use reqwest::Method;
use serde_json::json;
use tessera_testkit::spawn_app;

#[tokio::test]
async fn create_returns_the_fusionauth_user_shape() {
    let app = spawn_app().await;
    let body = json!({"user": {
        "email": "Ann@Example.com", "password": "correct horse", "username": "ann",
        "mobilePhone": "+1 (555) 444-3232", "firstName": "Ann", "lastName": "Lee",
        "data": {"plan": "pro"}
    }});
    let r = app.admin(Method::POST, "/api/user", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = &r.json["user"];
    assert_eq!(u["email"], "ann@example.com");
    assert_eq!(u["username"], "ann");
    assert_eq!(u["mobilePhone"], "+15554443232");
    assert_eq!(u["firstName"], "Ann");
    assert_eq!(u["data"], json!({"plan": "pro"}));
    assert_eq!(u["active"], true);
    assert!(u["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(u.get("password").is_none() && !r.text.contains("argon2"), "no password material: {}", r.text);

    let id = u["id"].as_str().unwrap();
    let got = app.admin(Method::GET, &format!("/api/user/{id}"), None).await;
    assert_eq!((got.status, &got.json["user"]), (200, u));
    let found = app.admin(Method::GET, "/api/user?loginId=ANN@example.com", None).await;
    assert_eq!(found.json["user"]["id"], u["id"]);
    let by_name = app.admin(Method::GET, "/api/user?username=ANN", None).await;
    assert_eq!(by_name.json["user"]["id"], u["id"]);
}

#[tokio::test]
async fn create_with_a_chosen_id() {
    let app = spawn_app().await;
    let id = "3f6c9a2e-1b2d-4c3e-9f00-0a1b2c3d4e5f";
    let r = app
        .admin(
            Method::POST,
            &format!("/api/user/{id}"),
            Some(json!({"user": {"username": "bob", "password": "password1"}})),
        )
        .await;
    assert_eq!((r.status, r.json["user"]["id"].as_str()), (200, Some(id)));
    let again = app
        .admin(
            Method::POST,
            &format!("/api/user/{id}"),
            Some(json!({"user": {"username": "bob2", "password": "password1"}})),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json["fieldErrors"]["user.id"][0]["code"], "[duplicate]user.id");
}

#[tokio::test]
async fn validation_errors_use_stable_codes() {
    let app = spawn_app().await;
    let r = app
        .admin(
            Method::POST,
            "/api/user",
            Some(json!({"user": {"email": "not-an-email", "password": "short", "mobilePhone": "555-1234"}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let f = &r.json["fieldErrors"];
    assert_eq!(f["user.email"][0]["code"], "[notEmail]user.email");
    assert_eq!(f["user.password"][0]["code"], "[tooShort]user.password");
    assert_eq!(f["user.mobilePhone"][0]["code"], "[invalid]user.mobilePhone");
    assert!(f["user.mobilePhone"][0]["message"].as_str().unwrap().contains("E.164"));
    assert_eq!(r.json["generalErrors"], json!([]));

    let blank = app.admin(Method::POST, "/api/user", Some(json!({"user": {"password": "long enough"}}))).await;
    assert_eq!(blank.json["fieldErrors"]["user.email"][0]["code"], "[blank]user.email");
    let no_password = app.admin(Method::POST, "/api/user", Some(json!({"user": {"email": "a@example.com"}}))).await;
    assert_eq!(no_password.json["fieldErrors"]["user.password"][0]["code"], "[blank]user.password");
    let no_user = app.admin(Method::POST, "/api/user", Some(json!({"email": "a@example.com"}))).await;
    assert_eq!((no_user.status, &no_user.json["generalErrors"][0]["code"]), (400, &json!("[missing]user")));

    let bad_json = app
        .send(
            app.client
                .post(app.url("/api/user"))
                .header("Authorization", &app.api_key)
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    assert_eq!((bad_json.status, &bad_json.json["generalErrors"][0]["code"]), (400, &json!("[invalidJSON]")));
    let wrong_type = app.admin(Method::POST, "/api/user", Some(json!({"user": {"email": 42}}))).await;
    assert_eq!((wrong_type.status, &wrong_type.json["generalErrors"][0]["code"]), (400, &json!("[invalidJSON]")));
}

#[tokio::test]
async fn duplicates_are_refused_without_half_writes() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "password1").await;
    let r = app
        .admin(Method::POST, "/api/user", Some(json!({"user": {"email": "ANN@example.com", "password": "password2"}})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["fieldErrors"]["user.email"][0]["code"], "[duplicate]user.email");
    // The first user's password still works: nothing was overwritten.
    assert_eq!(app.login("ann@example.com", "password1").await.status, 200);
}

#[tokio::test]
async fn admin_routes_need_a_valid_api_key() {
    let app = spawn_app().await;
    let body = json!({"user": {"email": "a@example.com", "password": "password1"}});
    let none = app.send(app.client.post(app.url("/api/user")).json(&body)).await;
    assert_eq!((none.status, none.text.as_str()), (401, ""));
    let wrong = app.send(app.client.post(app.url("/api/user")).header("Authorization", "tsk_wrong").json(&body)).await;
    assert_eq!(wrong.status, 401);
    for path in ["/api/user?loginId=a@example.com", "/api/system/audit-log"] {
        assert_eq!(app.send(app.client.get(app.url(path))).await.status, 401, "{path}");
    }
}

#[tokio::test]
async fn put_replaces_and_patch_merges() {
    let app = spawn_app().await;
    let r = app
        .admin(Method::POST, "/api/user", Some(json!({"user": {"email": "a@example.com", "password": "password1", "firstName": "A", "data": {"x": 1, "y": 2}}})))
        .await;
    let id = r.json["user"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/user/{id}");

    let patched =
        app.admin(Method::PATCH, &path, Some(json!({"user": {"lastName": "B", "data": {"y": null, "z": 3}}}))).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["user"]["firstName"], "A");
    assert_eq!(patched.json["user"]["lastName"], "B");
    assert_eq!(patched.json["user"]["data"], json!({"x": 1, "z": 3}));
    assert_eq!(app.login("a@example.com", "password1").await.status, 200, "PATCH kept the password");

    let put = app
        .admin(Method::PUT, &path, Some(json!({"user": {"email": "a@example.com", "password": "new password"}})))
        .await;
    assert_eq!(put.status, 200);
    assert!(put.json["user"].get("firstName").is_none(), "PUT replaces: {}", put.text);
    assert_eq!(put.json["user"]["data"], json!({}));
    assert_eq!(app.login("a@example.com", "password1").await.status, 404);
    assert_eq!(app.login("a@example.com", "new password").await.status, 200);

    let bad = app.admin(Method::PATCH, &path, Some(json!({"user": {"mobilePhone": "call me"}}))).await;
    assert_eq!(bad.json["fieldErrors"]["user.mobilePhone"][0]["code"], "[invalid]user.mobilePhone");
    let ghost = app
        .admin(Method::PUT, "/api/user/3f6c9a2e-1b2d-4c3e-9f00-0a1b2c3d4e5f", Some(json!({"user": {"username": "x"}})))
        .await;
    assert_eq!(ghost.status, 404);
}

#[tokio::test]
async fn delete_deactivates_and_hard_delete_removes() {
    let app = spawn_app().await;
    let id = app.create_user("a@example.com", "password1").await;
    let path = format!("/api/user/{id}");
    assert_eq!(app.admin(Method::DELETE, &path, None).await.status, 200);
    let got = app.admin(Method::GET, &path, None).await;
    assert_eq!(got.json["user"]["active"], false);
    let login = app.login("a@example.com", "password1").await;
    assert_eq!((login.status, login.text.as_str()), (404, ""), "a deactivated user cannot sign in");

    assert_eq!(app.admin(Method::DELETE, &format!("{path}?hardDelete=true"), None).await.status, 200);
    assert_eq!(app.admin(Method::GET, &path, None).await.status, 404);
    assert_eq!(app.admin(Method::DELETE, &path, None).await.status, 404);
    assert_eq!(app.admin(Method::GET, "/api/user/not-a-uuid", None).await.status, 404);
}
