//! An HTTP client for the API tests: real requests over loopback, carrying a session
//! cookie and its CSRF token, or a bearer token.

use reqwest::Method;
use serde_json::{json, Value};

use super::TestApp;

/// The admin every test creates through the setup code.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// One answer: status, headers and body.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "body: {}", self.body);
        self
    }

    /// Asserts a 4xx with the error shape, and returns the `field`.
    #[track_caller]
    pub fn error(self, status: u16) -> Option<String> {
        let body = self.expect(status).json();
        assert!(body["error"].is_string(), "no error message: {body}");
        body["field"].as_str().map(str::to_owned)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A caller of the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// Sent as the `Origin` header when set.
    pub origin: Option<String>,
}

impl Api {
    pub fn anonymous(app: &TestApp) -> Api {
        Api {
            base: format!("http://{}", app.app().http_addr),
            client: reqwest::Client::new(),
            cookie: None,
            csrf: None,
            bearer: None,
            origin: None,
        }
    }

    pub fn with_token(app: &TestApp, token: &str) -> Api {
        Api {
            bearer: Some(token.to_owned()),
            ..Api::anonymous(app)
        }
    }

    /// Creates the first admin with the setup code and returns its session.
    pub async fn setup(app: &TestApp) -> Api {
        let code = app
            .app()
            .controller()
            .setup_code()
            .expect("setup is open on a fresh controller");
        let mut api = Api::anonymous(app);
        let resp = api
            .post(
                "/api/v1/setup",
                json!({ "code": code, "name": ADMIN, "password": ADMIN_PASSWORD }),
            )
            .await
            .expect(201);
        api.take_session(&resp);
        api
    }

    /// The first admin's session: set up on a fresh controller, else logged in (after a
    /// restart on the same storage).
    pub async fn admin(app: &TestApp) -> Api {
        if app.app().controller().setup_code().is_some() {
            Api::setup(app).await
        } else {
            Api::login(app, ADMIN, ADMIN_PASSWORD).await
        }
    }

    /// Logs in; panics unless it works.
    pub async fn login(app: &TestApp, name: &str, password: &str) -> Api {
        let mut api = Api::anonymous(app);
        let resp = api
            .post(
                "/api/v1/auth/login",
                json!({ "name": name, "password": password }),
            )
            .await
            .expect(200);
        api.take_session(&resp);
        api
    }

    /// Keeps the session cookie and CSRF token of a login or setup answer.
    pub fn take_session(&mut self, resp: &Resp) {
        let cookie = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ampwarden_session="))
            .expect("a session cookie");
        self.cookie = Some(cookie.split(';').next().unwrap_or_default().to_owned());
        self.csrf = resp.json()["csrf_token"].as_str().map(str::to_owned);
    }

    /// Adds a user (as this admin) and returns its logged-in session.
    pub async fn user(&self, app: &TestApp, name: &str, role: &str) -> Api {
        let password = format!("{name}-password-123");
        self.post(
            "/api/v1/users",
            json!({ "name": name, "password": password, "role": role }),
        )
        .await
        .expect(201);
        Api::login(app, name, &password).await
    }

    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("X-CSRF-Token", t);
        }
        if let Some(b) = &self.bearer {
            req = req.header("Authorization", format!("Bearer {b}"));
        }
        if let Some(o) = &self.origin {
            req = req.header("Origin", o);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.body(body).send().await.expect("the server answers");
        Resp {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("a body"),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        match body {
            Some(b) => {
                self.send_bytes(
                    method,
                    path,
                    Some("application/json"),
                    b.to_string().into_bytes(),
                )
                .await
            }
            None => self.send_bytes(method, path, None, Vec::new()).await,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }
}
