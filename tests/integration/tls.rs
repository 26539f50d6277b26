//! TLS and OCPP security profiles 2 and 3, through real sockets: a site CA, a server
//! certificate and station certificates made by the code of `ampwarden tls init` /
//! `tls station` in a temporary directory; a controller with `wss://` and `https://`
//! listeners next to its plain ones.

use crate::common;

use std::path::{Path, PathBuf};

use ampwarden::simulate::client::{ClientError, ClientTls, ConnectOptions, StationClient};
use ampwarden::tls;
use common::http::{Api, ADMIN, ADMIN_PASSWORD};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Profile 0 (CP001), profile 2 with a password (CP201), profile 3 (CP301, CP302).
const SITE: &str = r#"
[[zones]]
id = "main"
limit_a = 63.0

[[stations]]
id = "CP001"
zone = "main"
max_current_a = 32.0

[[stations]]
id = "CP201"
zone = "main"
max_current_a = 32.0
security_profile = 2
password = "profile-2-key-01"

[[stations]]
id = "CP301"
zone = "main"
max_current_a = 32.0
security_profile = 3

[[stations]]
id = "CP302"
zone = "main"
max_current_a = 32.0
security_profile = 3
"#;

/// A site's certificates: the CA and server certificate of `tls init`, station
/// certificates for CP301 and CP302, and a certificate for CP301 from another CA.
struct Pki {
    dir: tempfile::TempDir,
    other: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        tls::init(dir.path(), &hosts, false).expect("tls init");
        for id in ["CP301", "CP302"] {
            tls::issue_station(dir.path(), id, false).expect("station certificate");
        }
        let other = tempfile::tempdir().expect("temp dir");
        tls::init(other.path(), &hosts, false).expect("another CA");
        tls::issue_station(other.path(), "CP301", false).expect("a foreign certificate");
        Pki { dir, other }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[tls]` section, for the body of the test's configuration.
    fn section(&self) -> String {
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
            self.path(tls::SERVER_CERT).display().to_string(),
            self.path(tls::SERVER_KEY).display().to_string(),
            self.path(tls::CA_CERT).display().to_string(),
        )
    }

    /// A client that trusts the site CA, with the certificate of `station` from `dir`.
    fn client(&self, station: Option<(&Path, &str)>) -> ClientTls {
        let ca = self.path(tls::CA_CERT);
        match station {
            None => ClientTls::from_files(&ca, None),
            Some((dir, id)) => {
                let cert = dir.join(format!("station-{id}.pem"));
                let key = dir.join(format!("station-{id}.key"));
                ClientTls::from_files(&ca, Some((&cert, &key)))
            }
        }
        .expect("client TLS")
    }
}

/// (`http_listen` too: `config_text` leaves it out when it sees `http_listen_tls`.)
const LISTENERS: &str =
    "http_listen = \"127.0.0.1:0\"\nocpp_listen_tls = \"127.0.0.1:0\"\nhttp_listen_tls = \"127.0.0.1:0\"\n";

fn start(pki: &Pki) -> TestApp {
    TestApp::start(LISTENERS, &format!("{SITE}\n{}", pki.section()))
}

fn wss_url(app: &TestApp, id: &str) -> String {
    let addr = app
        .app()
        .ocpp_tls_addr
        .expect("the wss:// listener is bound");
    format!("wss://{addr}/ocpp/{id}")
}

async fn connect_tls(
    app: &TestApp,
    id: &str,
    tls: ClientTls,
    password: Option<&str>,
) -> Result<StationClient, ClientError> {
    let options = ConnectOptions {
        tls: Some(tls),
        basic_auth: password.map(|p| (id.to_owned(), p.to_owned())),
        ..ConnectOptions::default()
    };
    StationClient::connect(&wss_url(app, id), options).await
}

async fn boots(station: &StationClient) {
    let boot = station
        .call("BootNotification", boot_payload())
        .await
        .expect("boot answered");
    assert_eq!(ok(boot)["status"], "Accepted");
}

#[track_caller]
fn assert_refused(result: Result<StationClient, ClientError>, status: u16) {
    match result {
        Err(ClientError::Refused(s)) if s == status => {}
        Err(e) => panic!("expected HTTP {status}, got {e}"),
        Ok(_) => panic!("expected HTTP {status}, the station was admitted"),
    }
}

#[tokio::test]
async fn a_profile_2_station_boots_over_wss_with_its_password_only() {
    let pki = Pki::new();
    let app = start(&pki);

    let station = connect_tls(&app, "CP201", pki.client(None), Some("profile-2-key-01"))
        .await
        .expect("profile 2 over wss:// with its password");
    boots(&station).await;
    station.close();

    // The same station over plain ws://, with the right password: refused at the handshake.
    let plain = ConnectOptions {
        basic_auth: Some(("CP201".into(), "profile-2-key-01".into())),
        ..ConnectOptions::default()
    };
    assert_refused(app.connect_with("CP201", plain).await, 403);
    // Over wss:// with a wrong password, or none.
    let wrong = connect_tls(&app, "CP201", pki.client(None), Some("not-the-key")).await;
    assert_refused(wrong, 401);
    assert_refused(
        connect_tls(&app, "CP201", pki.client(None), None).await,
        401,
    );

    // A profile-0 station may use either listener.
    let over_tls = connect_tls(&app, "CP001", pki.client(None), None)
        .await
        .expect("profile 0 over wss://");
    boots(&over_tls).await;
    over_tls.close();
    boots(&app.connect("CP001").await).await;

    // A client that does not trust the site CA does not get through the TLS handshake.
    let foreign =
        ClientTls::from_files(&pki.other.path().join(tls::CA_CERT), None).expect("client TLS");
    let refused = connect_tls(&app, "CP201", foreign, Some("profile-2-key-01")).await;
    assert!(
        matches!(refused, Err(ClientError::WebSocket(_))),
        "a server certificate from an unknown CA must fail the TLS handshake: {:?}",
        refused.err()
    );
}

#[tokio::test]
async fn a_profile_3_station_needs_a_certificate_of_the_site_ca_naming_it() {
    let pki = Pki::new();
    let app = start(&pki);
    let dir = pki.dir.path();

    let station = connect_tls(&app, "CP301", pki.client(Some((dir, "CP301"))), None)
        .await
        .expect("profile 3 with its certificate");
    boots(&station).await;

    // A certificate from another CA: the TLS handshake fails (no HTTP answer at all).
    let foreign = connect_tls(
        &app,
        "CP301",
        pki.client(Some((pki.other.path(), "CP301"))),
        None,
    )
    .await;
    match foreign {
        Err(ClientError::WebSocket(e)) => {
            let text = e.to_string();
            assert!(
                text.contains("UnknownCA") || text.contains("alert") || text.contains("TLS"),
                "{text}"
            );
        }
        Err(e) => panic!("expected a failed TLS handshake, got {e}"),
        Ok(_) => panic!("a certificate from another CA was admitted"),
    }
    // A good certificate, but CP302's: refused at the handshake.
    assert_refused(
        connect_tls(&app, "CP301", pki.client(Some((dir, "CP302"))), None).await,
        403,
    );
    // No certificate at all: refused at the handshake.
    assert_refused(
        connect_tls(&app, "CP301", pki.client(None), None).await,
        403,
    );
    // Nor over plain ws://.
    assert_refused(
        app.connect_with("CP301", ConnectOptions::default()).await,
        403,
    );

    // CP302 with its own certificate is fine too; CP301 is still connected.
    let other = connect_tls(&app, "CP302", pki.client(Some((dir, "CP302"))), None)
        .await
        .expect("CP302 with its certificate");
    boots(&other).await;
    boots(&station).await;
}

/// One HTTP/1.1 request over TLS: (status, headers, body).
async fn https(
    addr: std::net::SocketAddr,
    tls: &ClientTls,
    request: &str,
) -> (u16, Vec<(String, String)>, String) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connects");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
    let mut stream = tokio_rustls::TlsConnector::from(tls.0.clone())
        .connect(name, stream)
        .await
        .expect("TLS handshake");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    // The server closes after answering (Connection: close); a TLS close_notify may be
    // missing, which is not an error here.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn https_serves_the_api_with_hsts_and_a_secure_session_cookie() {
    let pki = Pki::new();
    let app = start(&pki);
    let addr = app
        .app()
        .http_tls_addr
        .expect("the https:// listener is bound");
    let client = pki.client(None);

    let get = format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, headers, body) = https(addr, &client, &get).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    assert_eq!(
        header(&headers, "strict-transport-security"),
        Some("max-age=31536000")
    );

    // The first admin, created over HTTPS: its session cookie is Secure.
    let code = app.app().controller().setup_code().expect("setup open");
    let setup = json!({ "code": code, "name": ADMIN, "password": ADMIN_PASSWORD }).to_string();
    let post = format!(
        "POST /api/v1/setup HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{setup}",
        setup.len()
    );
    let (status, headers, body) = https(addr, &client, &post).await;
    assert_eq!(status, 201, "{body}");
    let cookie = header(&headers, "set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("ampwarden_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(header(&headers, "strict-transport-security").is_some());

    // A 404 over TLS carries HSTS too.
    let missing =
        format!("GET /api/v1/nothing HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, headers, _) = https(addr, &client, &missing).await;
    assert_eq!(status, 404);
    assert!(header(&headers, "strict-transport-security").is_some());

    // The plain listener still works, without Secure (the browser would drop the cookie)
    // and without HSTS.
    let mut api = Api::anonymous(&app);
    let resp = api
        .post(
            "/api/v1/auth/login",
            json!({ "name": ADMIN, "password": ADMIN_PASSWORD }),
        )
        .await
        .expect(200);
    let plain_cookie = resp.header("set-cookie").expect("a cookie").to_owned();
    assert!(!plain_cookie.contains("Secure"), "{plain_cookie}");
    assert!(resp.header("strict-transport-security").is_none());
    api.take_session(&resp);
    api.get("/api/v1/auth/session").await.expect(200);
}

/// The certificate the HTTPS listener presents to a new connection.
async fn presented(addr: std::net::SocketAddr, tls: &ClientTls) -> Vec<u8> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connects");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
    let stream = tokio_rustls::TlsConnector::from(tls.0.clone())
        .connect(name, stream)
        .await
        .expect("TLS handshake");
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("a server certificate")
}

fn first_der(path: &Path) -> Vec<u8> {
    tls::read_certificates("test", path).expect("a certificate")[0]
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn a_reload_gives_new_connections_the_new_certificate_and_keeps_it_on_a_bad_file() {
    let pki = Pki::new();
    let app = start(&pki);
    let addr = app.app().http_tls_addr.expect("https:// listener");
    // A client that trusts both the site CA and the one the new certificate comes from.
    let mut cas = std::fs::read(pki.path(tls::CA_CERT)).expect("CA");
    cas.extend(std::fs::read(pki.other.path().join(tls::CA_CERT)).expect("other CA"));
    let client = ClientTls::from_pem(&cas, None).expect("client TLS");
    let original = first_der(&pki.path(tls::SERVER_CERT));
    assert_eq!(presented(addr, &client).await, original);

    // A broken key: the reload fails, names the key, and the certificate stays.
    std::fs::write(pki.path(tls::SERVER_KEY), "not a key\n").expect("write");
    let err = app.app().reload_tls().expect_err("a bad key is refused");
    assert_eq!(err.key, "tls.key_file");
    assert_eq!(presented(addr, &client).await, original);
    // A key that is not the certificate's: refused as well.
    std::fs::copy(
        pki.other.path().join(tls::SERVER_KEY),
        pki.path(tls::SERVER_KEY),
    )
    .expect("copy");
    let err = app
        .app()
        .reload_tls()
        .expect_err("a foreign key is refused");
    assert!(
        err.problem.contains("not the key of the certificate"),
        "{err}"
    );
    assert_eq!(presented(addr, &client).await, original);

    // Both files replaced: new connections get the new certificate.
    for name in [tls::SERVER_CERT, tls::SERVER_KEY] {
        std::fs::copy(pki.other.path().join(name), pki.path(name)).expect("copy");
    }
    let summary = app
        .app()
        .reload_tls()
        .expect("the new certificate loads")
        .expect("TLS is configured");
    assert!(summary.names.iter().any(|n| n == "127.0.0.1"), "{summary}");
    let renewed = first_der(&pki.path(tls::SERVER_CERT));
    assert_ne!(renewed, original);
    assert_eq!(presented(addr, &client).await, renewed);
    // The stations' listener shares it.
    let wss = app.app().ocpp_tls_addr.expect("wss:// listener");
    assert_eq!(presented(wss, &client).await, renewed);
}

#[test]
fn a_missing_certificate_file_stops_the_start_naming_its_key() {
    let pki = Pki::new();
    std::fs::remove_file(pki.path(tls::SERVER_CERT)).expect("remove");
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config_text(dir.path(), LISTENERS, &format!("{SITE}\n{}", pki.section()));
    let config = ampwarden_actors::config::Config::from_toml_str(&text).expect("valid");
    let err = match ampwarden::App::start(config) {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("tls.cert_file: "), "{err}");
    assert!(err.contains("cannot read it"), "{err}");
}

/// A secondary dials its primary over `wss://`: with `federation.ca_file` naming the
/// site CA it links and holds a grant; a secondary trusting another CA is refused at
/// the handshake, stays on its fallback and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_links_to_its_primary_over_wss_trusting_the_site_ca_only() {
    let pki = Pki::new();
    let server_tls = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        pki.path(tls::SERVER_CERT).display().to_string(),
        pki.path(tls::SERVER_KEY).display().to_string(),
    );
    let primary = TestApp::start(
        "http_listen = \"127.0.0.1:0\"\nhttp_listen_tls = \"127.0.0.1:0\"\n",
        &format!(
            "[site]\nname = \"primary\"\nmode = \"static\"\n\n\
             [[zones]]\nid = \"main\"\nlimit_a = 100.0\n\n\
             [federation]\nrole = \"primary\"\ntokens = [\
             {{ name = \"hall-b\", token = \"token-of-hall-b-01\", zone = \"main\", fallback_budget_a = 20.0 }}, \
             {{ name = \"hall-c\", token = \"token-of-hall-c-01\", zone = \"main\", fallback_budget_a = 20.0 }}]\n\n\
             {server_tls}"
        ),
    );
    let addr = primary
        .app()
        .http_tls_addr
        .expect("the https:// listener is bound");
    let secondary = |name: &str, ca: &Path| {
        TestApp::start(
            "",
            &format!(
                "[site]\nname = \"{name}\"\nmode = \"static\"\n\n\
                 [[zones]]\nid = \"hall\"\nlimit_a = 80.0\n\n\
                 [federation]\nrole = \"secondary\"\nprimary_url = \"wss://localhost:{}\"\n\
                 token = \"token-of-{name}-01\"\nzone = \"main\"\nfallback_budget_a = 20.0\n\
                 ca_file = {:?}\n",
                addr.port(),
                ca.display().to_string()
            ),
        )
    };
    let trusted = secondary("hall-b", &pki.path(tls::CA_CERT));
    let foreign = secondary("hall-c", &pki.other.path().join(tls::CA_CERT));

    let deadline = std::time::Instant::now() + LONG;
    loop {
        let l = link_of(&trusted).await;
        if l["mode"] == "granted" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the secondary trusting the site CA never held a grant: {l:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + LONG;
    let refused = loop {
        let l = link_of(&foreign).await;
        if l["last_error"].as_str().is_some_and(|e| !e.is_empty()) {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the secondary trusting another CA said nothing: {l:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(refused["mode"], "fallback", "{refused:#}");
    assert_eq!(refused["connected"], false, "{refused:#}");
    let why = refused["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(why.contains("certificate"), "{refused:#}");
    // The primary sees one secondary linked and the other never.
    let view = Api::admin(&primary)
        .await
        .get("/api/v1/federation")
        .await
        .expect(200)
        .json();
    let link_of = |name: &str| {
        view["secondaries"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .map(|s| s["link"].clone())
    };
    assert_eq!(link_of("hall-b"), Some(json!("linked")), "{view:#}");
    assert_eq!(link_of("hall-c"), Some(json!("never_seen")), "{view:#}");
}

/// A controller's own view of its federation link.
async fn link_of(app: &TestApp) -> serde_json::Value {
    let view = Api::admin(app)
        .await
        .get("/api/v1/federation")
        .await
        .expect(200)
        .json();
    view["link"].clone()
}
