//! Who may use the API: first-start setup with the one-time code, login and its rate
//! limit, sessions with CSRF protection, roles, API tokens, users.

use crate::common;

use common::http::{Api, ADMIN, ADMIN_PASSWORD};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_and_the_openapi_document_need_no_login() {
    let app = TestApp::start("", SMALL_SITE);
    let anon = Api::anonymous(&app);
    assert_eq!(
        anon.get("/api/v1/health").await.expect(200).json(),
        json!({"status": "ok"})
    );
    let doc = anon.get("/api/v1/openapi.json").await.expect(200).json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/api/v1/stations/{id}/actions/{action}"]["post"]["x-required-role"],
        "operator"
    );
    assert!(doc["paths"]["/api/v1/badges.csv"]["get"].is_object());
}

#[tokio::test]
async fn setup_creates_the_first_admin_once_with_the_printed_code() {
    let app = TestApp::start("", SMALL_SITE);
    let anon = Api::anonymous(&app);
    assert_eq!(
        anon.get("/api/v1/setup").await.expect(200).json()["needed"],
        true
    );
    let code = app.app().controller().setup_code().expect("setup open");

    let field = anon
        .post(
            "/api/v1/setup",
            json!({"code": "AAAA-BBBB-CCCC", "name": "admin", "password": ADMIN_PASSWORD}),
        )
        .await
        .error(403);
    assert_eq!(field.as_deref(), Some("code"));
    let field = anon
        .post(
            "/api/v1/setup",
            json!({"code": code, "name": "admin", "password": "short"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("password"));
    assert!(
        app.app().controller().setup_code().is_some(),
        "a refused setup keeps the code"
    );

    let admin = Api::setup(&app).await;
    assert_eq!(
        admin.get("/api/v1/auth/session").await.expect(200).json()["role"],
        "admin"
    );
    assert_eq!(app.app().controller().setup_code(), None);
    assert_eq!(
        anon.get("/api/v1/setup").await.expect(200).json()["needed"],
        false
    );
    anon.post(
        "/api/v1/setup",
        json!({"code": code, "name": "mallory", "password": ADMIN_PASSWORD}),
    )
    .await
    .error(409);
}

#[tokio::test]
async fn the_setup_code_is_never_served_over_http() {
    let app = TestApp::start("", SMALL_SITE);
    let code = app.app().controller().setup_code().expect("setup open");
    let anon = Api::anonymous(&app);
    for path in [
        "/api/v1/setup",
        "/api/v1/openapi.json",
        "/api/v1/health",
        "/",
    ] {
        let body = anon.get(path).await.body;
        assert!(!body.contains(&code), "{path} shows the setup code");
    }
}

#[tokio::test]
async fn setup_survives_a_restart_until_done_and_not_after() {
    let mut app = TestApp::start("", SMALL_SITE);
    app.restart();
    assert!(app.app().controller().setup_code().is_some());
    Api::setup(&app).await;
    app.restart();
    assert_eq!(app.app().controller().setup_code(), None);
    Api::login(&app, ADMIN, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn every_resource_refuses_the_unauthenticated_with_401() {
    let app = TestApp::start("", SMALL_SITE);
    Api::setup(&app).await;
    let anon = Api::anonymous(&app);
    for path in [
        "/api/v1/site",
        "/api/v1/stations",
        "/api/v1/stations/CP001",
        "/api/v1/transactions",
        "/api/v1/transactions.csv",
        "/api/v1/badges",
        "/api/v1/badges.csv",
        "/api/v1/zones",
        "/api/v1/meters",
        "/api/v1/tariffs",
        "/api/v1/settings",
        "/api/v1/logs",
        "/api/v1/logs.csv",
        "/api/v1/config",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/commissioning",
        "/api/v1/events",
        "/api/v1/site/chart.svg",
    ] {
        anon.get(path).await.error(401);
    }
    anon.post("/api/v1/badges", json!({"id_tag": "X"}))
        .await
        .error(401);
    anon.delete("/api/v1/stations/CP001").await.error(401);
}

#[tokio::test]
async fn login_is_refused_with_a_wrong_password_and_works_with_the_right_one() {
    let app = TestApp::start("", SMALL_SITE);
    Api::setup(&app).await;
    let anon = Api::anonymous(&app);
    let field = anon
        .post(
            "/api/v1/auth/login",
            json!({"name": ADMIN, "password": "wrong password"}),
        )
        .await
        .error(401);
    assert_eq!(field.as_deref(), Some("password"));
    anon.post(
        "/api/v1/auth/login",
        json!({"name": "nobody", "password": ADMIN_PASSWORD}),
    )
    .await
    .error(401);
    let admin = Api::login(&app, ADMIN, ADMIN_PASSWORD).await;
    let cookie = admin
        .get("/api/v1/health")
        .await
        .header("set-cookie")
        .map(str::to_owned);
    assert_eq!(cookie, None, "only login sets the cookie");
    admin.get("/api/v1/users").await.expect(200);
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_strict() {
    let app = TestApp::start("", SMALL_SITE);
    let code = app.app().controller().setup_code().expect("open");
    let resp = Api::anonymous(&app)
        .post(
            "/api/v1/setup",
            json!({"code": code, "password": ADMIN_PASSWORD}),
        )
        .await
        .expect(201);
    let cookie = resp.header("set-cookie").expect("cookie").to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
}

#[tokio::test]
async fn the_sixth_failed_login_in_a_minute_is_refused_with_429() {
    let app = TestApp::start("", SMALL_SITE);
    Api::setup(&app).await;
    let anon = Api::anonymous(&app);
    for _ in 0..5 {
        anon.post(
            "/api/v1/auth/login",
            json!({"name": ADMIN, "password": "guess guess guess"}),
        )
        .await
        .error(401);
    }
    let resp = anon
        .post(
            "/api/v1/auth/login",
            json!({"name": ADMIN, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert!(resp.header("retry-after").is_some());
    resp.error(429);
}

#[tokio::test]
async fn a_cookie_session_must_send_its_csrf_token_to_change_anything() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let badge = json!({"id_tag": "CSRF1"});
    let without = Api {
        csrf: None,
        ..admin.clone()
    };
    let field = without
        .post("/api/v1/badges", badge.clone())
        .await
        .error(403);
    assert_eq!(field.as_deref(), Some("X-CSRF-Token"));
    let wrong = Api {
        csrf: Some("not-the-token".into()),
        ..admin.clone()
    };
    wrong.post("/api/v1/badges", badge.clone()).await.error(403);
    without.get("/api/v1/badges").await.expect(200);
    admin.post("/api/v1/badges", badge).await.expect(201);
}

#[tokio::test]
async fn a_change_from_another_origin_is_refused() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let foreign = Api {
        origin: Some("http://evil.example".into()),
        ..admin.clone()
    };
    foreign
        .post("/api/v1/badges", json!({"id_tag": "X1"}))
        .await
        .error(403);
    let same = Api {
        origin: Some(admin.base.clone()),
        ..admin.clone()
    };
    same.post("/api/v1/badges", json!({"id_tag": "X1"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn a_json_body_must_be_declared_as_json() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let field = admin
        .send_bytes(
            Method::POST,
            "/api/v1/badges",
            Some("text/plain"),
            br#"{"id_tag":"FORM1"}"#.to_vec(),
        )
        .await
        .error(415);
    assert_eq!(field.as_deref(), Some("Content-Type"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .send(Method::POST, "/api/v1/auth/logout", None)
        .await
        .expect(204);
    admin.get("/api/v1/badges").await.error(401);
}

#[tokio::test]
async fn roles_decide_what_each_user_may_do() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let viewer = admin.user(&app, "vera", "viewer").await;
    let operator = admin.user(&app, "otto", "operator").await;

    for api in [&viewer, &operator, &admin] {
        api.get("/api/v1/stations").await.expect(200);
        api.get("/api/v1/badges").await.expect(200);
    }
    viewer
        .post("/api/v1/badges", json!({"id_tag": "V1"}))
        .await
        .error(403);
    viewer
        .post("/api/v1/stations/CP001/actions/reset", json!({}))
        .await
        .error(403);
    operator
        .post("/api/v1/badges", json!({"id_tag": "O1"}))
        .await
        .expect(201);
    // Operators act on stations but do not configure them.
    operator
        .post(
            "/api/v1/stations",
            json!({"id": "CP900", "zone": "main", "max_current_a": 16.0}),
        )
        .await
        .error(403);
    operator
        .put("/api/v1/zones/main", json!({"limit_a": 80.0}))
        .await
        .error(403);
    for api in [&viewer, &operator] {
        api.get("/api/v1/users").await.error(403);
        api.get("/api/v1/tokens").await.error(403);
        api.get("/api/v1/config").await.error(403);
    }
    admin.get("/api/v1/config").await.expect(200);
}

#[tokio::test]
async fn a_demoted_or_removed_user_loses_rights_at_once() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let otto = admin.user(&app, "otto", "operator").await;
    otto.post("/api/v1/badges", json!({"id_tag": "A1"}))
        .await
        .expect(201);
    admin
        .put("/api/v1/users/otto", json!({"role": "viewer"}))
        .await
        .expect(200);
    otto.post("/api/v1/badges", json!({"id_tag": "A2"}))
        .await
        .error(403);
    admin.delete("/api/v1/users/otto").await.expect(204);
    otto.get("/api/v1/badges").await.error(401);
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_demoted() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .put("/api/v1/users/admin", json!({"role": "operator"}))
        .await
        .error(409);
    admin.delete("/api/v1/users/admin").await.error(409);
    admin.user(&app, "second", "admin").await;
    admin.delete("/api/v1/users/second").await.expect(204);
}

#[tokio::test]
async fn users_are_listed_without_hashes_and_checked() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin.user(&app, "vera", "viewer").await;
    let users = admin.get("/api/v1/users").await.expect(200);
    assert!(!users.body.contains("argon2"), "{}", users.body);
    let names: Vec<String> = users
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["admin", "vera"]);
    let field = admin
        .post(
            "/api/v1/users",
            json!({"name": "bad name", "password": "long enough pw", "role": "viewer"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("name"));
    let field = admin
        .post(
            "/api/v1/users",
            json!({"name": "x", "password": "long enough pw", "role": "root"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("role"));
    admin
        .post(
            "/api/v1/users",
            json!({"name": "vera", "password": "long enough pw", "role": "viewer"}),
        )
        .await
        .error(409);
}

#[tokio::test]
async fn changing_ones_password_needs_the_current_one() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let field = admin
        .put(
            "/api/v1/auth/password",
            json!({"current": "not it at all", "password": "a new password"}),
        )
        .await
        .error(403);
    assert_eq!(field.as_deref(), Some("current"));
    admin
        .put(
            "/api/v1/auth/password",
            json!({"current": ADMIN_PASSWORD, "password": "a new password"}),
        )
        .await
        .expect(204);
    admin.get("/api/v1/users").await.expect(200);
    Api::login(&app, ADMIN, "a new password").await;
}

#[tokio::test]
async fn bearer_tokens_carry_their_role_until_revoked() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let created = admin
        .post("/api/v1/tokens", json!({"name": "bms", "role": "viewer"}))
        .await
        .expect(201)
        .json();
    let secret = created["token"].as_str().expect("secret").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();

    let bms = Api::with_token(&app, &secret);
    bms.get("/api/v1/site").await.expect(200);
    bms.get("/api/v1/transactions").await.expect(200);
    // No CSRF token needed with a bearer, but the role still applies.
    bms.post("/api/v1/badges", json!({"id_tag": "B1"}))
        .await
        .error(403);

    let listed = admin.get("/api/v1/tokens").await.expect(200);
    assert!(listed.body.contains(&id));
    assert!(!listed.body.contains(&secret), "the secret is shown once");

    let operator_token = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "script", "role": "operator"}),
        )
        .await
        .expect(201)
        .json()["token"]
        .as_str()
        .expect("secret")
        .to_owned();
    Api::with_token(&app, &operator_token)
        .post("/api/v1/badges", json!({"id_tag": "B2"}))
        .await
        .expect(201);

    admin
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .expect(204);
    bms.get("/api/v1/site").await.error(401);
    Api::with_token(&app, "awt_made.up")
        .get("/api/v1/site")
        .await
        .error(401);
    let field = admin
        .post("/api/v1/tokens", json!({"name": "", "role": "viewer"}))
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("name"));
}

#[tokio::test]
async fn unknown_endpoints_and_methods_answer_in_the_error_shape() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin.get("/api/v1/nothing-here").await.error(404);
    admin
        .send(Method::PATCH, "/api/v1/badges", None)
        .await
        .error(405);
}
