//! TLS for the stations' `wss://` listener and the UI's `https://` listener (OCPP
//! security profiles 2 and 3), with rustls and its ring provider only.
//!
//! * [`ServerTls`]: the server configuration both TLS listeners share. Its certificate is
//!   held by a resolver that [`ServerTls::reload`] re-reads from the files (SIGHUP); a bad
//!   file keeps the certificate in use. Client certificates are asked for, never required
//!   (a profile-2 station has none), but one that does not chain to `tls.client_ca_file`
//!   fails the TLS handshake. The CA itself is read at start.
//! * [`on_connect`]: puts a [`TlsPeer`] (with the client certificate's subject CN) into
//!   every TLS connection's data, where the OCPP handshake and the HTTP layer read it.
//! * [`init`] and [`issue_station`]: `ampwarden tls init` (a site CA and a server
//!   certificate) and `ampwarden tls station ID` (a station's client certificate), with
//!   rcgen.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix_web::dev::Extensions;
use ampwarden_actors::config::TlsConfig;
use chrono::{DateTime, Datelike, Utc};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The only crypto provider we use (no aws-lc-rs: it needs cmake to build). rustls
/// 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; it is still
/// maintained, and what stations speak (OCPP 1.6 asks for ECDHE with AES-GCM).
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A problem with one of the `[tls]` files, named by its configuration key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {}: {problem}", path.display())]
pub struct FileError {
    /// `tls.cert_file`, `tls.key_file` or `tls.client_ca_file`.
    pub key: &'static str,
    pub path: PathBuf,
    pub problem: String,
}

impl FileError {
    fn new(key: &'static str, path: &Path, problem: impl Into<String>) -> FileError {
        FileError {
            key,
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError::new(key, path, format!("cannot read it ({e})")))
}

/// Every certificate of a PEM file, in order.
pub fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let pem = read_file(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::new(key, path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(FileError::new(
            key,
            path,
            "holds no certificate (no \"-----BEGIN CERTIFICATE-----\")",
        ));
    }
    Ok(certs)
}

fn read_private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    let pem = read_file(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        FileError::new(
            key,
            path,
            format!("holds no private key in PEM (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

/// What a certificate says, for the log and `check-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    pub common_name: Option<String>,
    /// DNS names and IP addresses it is valid for.
    pub names: Vec<String>,
    pub not_after: DateTime<Utc>,
}

impl CertSummary {
    pub fn of(der: &CertificateDer<'_>) -> Result<CertSummary, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(n) => names.push((*n).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(CertSummary {
            common_name: common_name(&cert),
            names,
            not_after,
        })
    }
}

impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN={}", self.common_name.as_deref().unwrap_or("(none)"))?;
        if !self.names.is_empty() {
            write!(f, " for {}", self.names.join(", "))?;
        }
        write!(
            f,
            ", valid until {}",
            self.not_after.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

fn common_name(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The certificate chain and key of the files, checked to belong together.
fn load_certified_key(tls: &TlsConfig) -> Result<(Arc<CertifiedKey>, CertSummary), FileError> {
    let chain = read_certificates("tls.cert_file", &tls.cert_file)?;
    let summary = CertSummary::of(&chain[0])
        .map_err(|e| FileError::new("tls.cert_file", &tls.cert_file, e))?;
    let key = read_private_key("tls.key_file", &tls.key_file)?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        let problem = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "is not the key of the certificate in tls.cert_file ({})",
                tls.cert_file.display()
            ),
            other => format!("cannot be used ({other})"),
        };
        FileError::new("tls.key_file", &tls.key_file, problem)
    })?;
    Ok((Arc::new(certified), summary))
}

/// The server certificate in use, swapped whole by a reload.
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<(Arc<CertifiedKey>, CertSummary)>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
                .clone(),
        )
    }
}

/// The TLS side of the listeners: one server configuration shared by `wss://` and
/// `https://`, whose certificate can be reloaded. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    files: TlsConfig,
    config: Arc<ServerConfig>,
    cert: Arc<ReloadingCert>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks the certificate, its key and the client CA.
    pub fn load(tls: &TlsConfig) -> Result<ServerTls, FileError> {
        let (key, summary) = load_certified_key(tls)?;
        let provider = provider();
        let verifier = match &tls.client_ca_file {
            None => WebPkiClientVerifier::no_client_auth(),
            Some(path) => {
                let key = "tls.client_ca_file";
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(key, path)? {
                    roots.add(cert).map_err(|e| {
                        FileError::new(key, path, format!("not a usable CA certificate ({e})"))
                    })?;
                }
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| FileError::new(key, path, e.to_string()))?
            }
        };
        let cert = Arc::new(ReloadingCert {
            current: RwLock::new((key, summary)),
        });
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FileError::new("tls.cert_file", &tls.cert_file, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(cert.clone());
        Ok(ServerTls {
            files: tls.clone(),
            config: Arc::new(config),
            cert,
        })
    }

    /// The rustls configuration for a listener.
    pub fn server_config(&self) -> ServerConfig {
        (*self.config).clone()
    }

    /// The certificate in use.
    pub fn certificate(&self) -> CertSummary {
        self.cert
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Re-reads `tls.cert_file` and `tls.key_file`: new connections get the new
    /// certificate, open ones keep theirs. On any problem the certificate in use stays.
    pub fn reload(&self) -> Result<CertSummary, FileError> {
        let (key, summary) = load_certified_key(&self.files)?;
        *self
            .cert
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (key, summary.clone());
        Ok(summary)
    }
}

/// Logs what a certificate is and warns when it ends within 30 days.
pub fn log_certificate(what: &str, summary: &CertSummary) {
    let left = summary.not_after - Utc::now();
    if left < chrono::Duration::zero() {
        tracing::error!(
            "{what}: {summary}: EXPIRED — clients refuse it; replace the files and send SIGHUP"
        );
    } else if left < chrono::Duration::days(30) {
        tracing::warn!(
            "{what}: {summary}: ends in {} days; replace the files and send SIGHUP",
            left.num_days()
        );
    } else {
        tracing::info!("{what}: {summary}");
    }
}

/// What a TLS connection proved, in the connection's data (`HttpRequest::conn_data`).
/// Present on every connection of a TLS listener, and only there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPeer {
    /// The client certificate, if one was presented (it chains to the client CA, or the
    /// TLS handshake would have failed).
    pub certificate: Option<PeerCertificate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Its subject's common name, if it has one.
    pub common_name: Option<String>,
}

/// `HttpServer::on_connect` of the listeners: marks TLS connections and keeps what
/// their client certificate says.
pub fn on_connect(io: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(stream) = io.downcast_ref::<Tls>() else {
        return;
    };
    let (_, connection) = stream.get_ref();
    let certificate = connection
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|leaf| PeerCertificate {
            common_name: x509_parser::parse_x509_certificate(leaf.as_ref())
                .ok()
                .and_then(|(_, cert)| common_name(&cert)),
        });
    data.insert(TlsPeer { certificate });
}

// ---------------------------------------------------------------------------------------
// Certificates for a site: `ampwarden tls init` and `ampwarden tls station`.

/// The files `tls init` writes into its directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";

/// How long what we issue is valid. A server certificate stays within the 825 days that
/// Apple's systems accept even from a private CA; a station's is long, as stations are
/// hard to reach.
const CA_YEARS: i32 = 20;
const SERVER_DAYS: i64 = 825;
const STATION_YEARS: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{} exists already (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// What `tls init` wrote.
#[derive(Debug)]
pub struct Initialised {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub hosts: Vec<String>,
}

/// What `tls station` wrote.
#[derive(Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The names a server certificate is made for by default: localhost, 127.0.0.1 and the
/// machine's host name.
pub fn default_hosts() -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let name = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(name) = name {
        if !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    hosts
}

/// Valid from today (midnight UTC) for `days` days.
fn set_validity(params: &mut rcgen::CertificateParams, days: i64) {
    let ymd = |t: DateTime<Utc>| {
        // Months and days always fit a u8.
        let small = |n: u32| u8::try_from(n).unwrap_or(1);
        rcgen::date_time_ymd(t.year(), small(t.month()), small(t.day()))
    };
    let now = Utc::now();
    params.not_before = ymd(now);
    params.not_after = ymd(now + chrono::Duration::days(days));
}

fn years(n: i32) -> i64 {
    i64::from(n) * 365 + i64::from(n / 4)
}

/// A random, positive 16-byte serial number.
fn serial() -> Result<rcgen::SerialNumber, GenError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| GenError::Invalid(format!("no randomness: {e}")))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// Fails if any of `paths` exists (unless `force`), so that nothing is half-written.
fn check_free(paths: &[&Path], force: bool) -> Result<(), GenError> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(GenError::Exists(p.to_path_buf())),
        None => Ok(()),
    }
}

/// Writes a file; a private key (`secret`) is readable by its owner only (0600).
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), GenError> {
    let io = |e| GenError::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io)?;
    // The mode applies only to a new file: make a replaced key private too.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn create_dir(dir: &Path) -> Result<(), GenError> {
    std::fs::create_dir_all(dir).map_err(|e| GenError::Io {
        path: dir.to_owned(),
        source: e,
    })
}

/// `ampwarden tls init`: a site CA and a server certificate for `hosts` signed by it, in
/// `dir` (created if needed). Refuses to replace any of the files unless `force`.
pub fn init(dir: &Path, hosts: &[String], force: bool) -> Result<Initialised, GenError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    if hosts.is_empty() {
        return Err(GenError::Invalid(
            "a server certificate needs at least one host name or address".into(),
        ));
    }
    let out = Initialised {
        ca_cert: dir.join(CA_CERT),
        ca_key: dir.join(CA_KEY),
        server_cert: dir.join(SERVER_CERT),
        server_key: dir.join(SERVER_KEY),
        hosts: hosts.to_vec(),
    };
    check_free(
        &[&out.ca_cert, &out.ca_key, &out.server_cert, &out.server_key],
        force,
    )?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "ampwarden");
    ca.distinguished_name.push(
        DnType::CommonName,
        format!(
            "ampwarden site CA {} {}",
            hosts.last().map_or("", String::as_str),
            Utc::now().format("%Y-%m-%d")
        ),
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.serial_number = Some(serial()?);
    set_validity(&mut ca, years(CA_YEARS));
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let (server_cert, server_key) = server_certificate(hosts, &issuer)?;

    create_dir(dir)?;
    write_file(&out.ca_key, &issuer.key().serialize_pem(), true)?;
    write_file(&out.ca_cert, &ca_cert.pem(), false)?;
    write_file(&out.server_key, &server_key, true)?;
    write_file(&out.server_cert, &server_cert, false)?;
    Ok(out)
}

/// A server certificate for `hosts` signed by `issuer`: (certificate PEM, key PEM).
fn server_certificate(
    hosts: &[String],
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
) -> Result<(String, String), GenError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    if hosts.is_empty() {
        return Err(GenError::Invalid(
            "a server certificate needs at least one host name or address".into(),
        ));
    }
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server.distinguished_name = rcgen::DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::OrganizationName, "ampwarden");
    server
        .distinguished_name
        .push(DnType::CommonName, &hosts[0]);
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.serial_number = Some(serial()?);
    set_validity(&mut server, SERVER_DAYS);
    let server_cert = server.signed_by(&server_key, issuer)?;

    Ok((server_cert.pem(), server_key.serialize_pem()))
}

/// The site CA of `dir` (`ca.pem`, `ca.key`), to sign with.
fn site_ca(dir: &Path) -> Result<rcgen::Issuer<'static, rcgen::KeyPair>, GenError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| GenError::Io { path, source: e })
    };
    let ca_pem = read(CA_CERT)?;
    let ca_key = rcgen::KeyPair::from_pem(&read(CA_KEY)?)?;
    Ok(rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)?)
}

/// `ampwarden tls server`: a new server certificate for `hosts`, signed by the site CA
/// of `dir` (to renew it, or add a name): the stations that trust the CA keep working.
/// `server.pem` and `server.key` exist after `tls init`, so this needs `force`.
pub fn renew_server(dir: &Path, hosts: &[String], force: bool) -> Result<Initialised, GenError> {
    let out = Initialised {
        ca_cert: dir.join(CA_CERT),
        ca_key: dir.join(CA_KEY),
        server_cert: dir.join(SERVER_CERT),
        server_key: dir.join(SERVER_KEY),
        hosts: hosts.to_vec(),
    };
    check_free(&[&out.server_cert, &out.server_key], force)?;
    let issuer = site_ca(dir)?;
    let (cert, key) = server_certificate(hosts, &issuer)?;
    write_file(&out.server_key, &key, true)?;
    write_file(&out.server_cert, &cert, false)?;
    Ok(out)
}

/// `ampwarden tls station ID`: a client certificate for station `id` (subject CN = id),
/// signed by the CA of `dir` (`ca.pem`, `ca.key`), for security profile 3.
pub fn issue_station(dir: &Path, id: &str, force: bool) -> Result<Issued, GenError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    if let Some(problem) = ampwarden_actors::config::station_id_problem(id) {
        return Err(GenError::Invalid(format!("station id {problem}")));
    }
    let out = Issued {
        cert: dir.join(format!("station-{id}.pem")),
        key: dir.join(format!("station-{id}.key")),
    };
    check_free(&[&out.cert, &out.key], force)?;
    let issuer = site_ca(dir)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ampwarden");
    params.distinguished_name.push(DnType::CommonName, id);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial()?);
    set_validity(&mut params, years(STATION_YEARS));
    let cert = params.signed_by(&key, &issuer)?;

    write_file(&out.key, &key.serialize_pem(), true)?;
    write_file(&out.cert, &cert.pem(), false)?;
    Ok(out)
}

/// The lines of the configuration that use what `tls init` wrote.
pub fn config_lines(init: &Initialised) -> String {
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string()
    };
    format!(
        "[server]\n\
         ocpp_listen_tls = \"0.0.0.0:8888\"   # stations: wss://HOST:8888/ocpp/{{id}}\n\
         http_listen_tls = \"0.0.0.0:8443\"   # the UI and API: https://HOST:8443/\n\
         \n\
         [tls]\n\
         cert_file = {cert:?}\n\
         key_file = {key:?}\n\
         # for security profile 3 (station certificates: ampwarden tls station ID --dir DIR):\n\
         # client_ca_file = {ca:?}\n",
        cert = abs(&init.server_cert),
        key = abs(&init.server_key),
        ca = abs(&init.ca_cert),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    fn files(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: dir.join(SERVER_CERT),
            key_file: dir.join(SERVER_KEY),
            client_ca_file: Some(dir.join(CA_CERT)),
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn init_writes_a_ca_and_a_server_certificate_and_never_overwrites_unasked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = init(dir.path(), &hosts(), false).expect("init");
        #[cfg(unix)]
        {
            assert_eq!(mode(&made.ca_key), 0o600);
            assert_eq!(mode(&made.server_key), 0o600);
            assert_eq!(mode(&made.server_cert), 0o644);
        }
        let tls = ServerTls::load(&files(dir.path())).expect("the files load");
        let summary = tls.certificate();
        assert_eq!(summary.common_name.as_deref(), Some("localhost"));
        assert_eq!(summary.names, hosts());
        assert!(summary.not_after > Utc::now() + chrono::Duration::days(800));
        let before = std::fs::read(&made.ca_cert).expect("ca");
        match init(dir.path(), &hosts(), false) {
            Err(GenError::Exists(p)) => assert_eq!(p, made.ca_cert),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read(&made.ca_cert).expect("ca"), before);
        init(dir.path(), &hosts(), true).expect("--force replaces");
        assert_ne!(std::fs::read(&made.ca_cert).expect("ca"), before);
        let lines = config_lines(&made);
        assert!(lines.contains("[tls]\ncert_file = "), "{lines}");
        let parsed: toml::Value = toml::from_str(&lines).expect("the printed lines are TOML");
        assert!(parsed["server"]["ocpp_listen_tls"].is_str());
    }

    #[test]
    fn station_and_renewed_server_certificates_come_from_the_site_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        init(dir.path(), &hosts(), false).expect("init");
        let issued = issue_station(dir.path(), "CP-7", false).expect("station");
        let der = &read_certificates("test", &issued.cert).expect("cert")[0];
        let summary = CertSummary::of(der).expect("parses");
        assert_eq!(summary.common_name.as_deref(), Some("CP-7"));
        #[cfg(unix)]
        assert_eq!(mode(&issued.key), 0o600);
        assert!(matches!(
            issue_station(dir.path(), "CP-7", false),
            Err(GenError::Exists(_))
        ));
        assert!(matches!(
            issue_station(dir.path(), "bad/id", false),
            Err(GenError::Invalid(_))
        ));
        // The station certificate verifies against the CA, as the server's verifier does.
        let mut roots = RootCertStore::empty();
        for c in read_certificates("test", &dir.path().join(CA_CERT)).expect("ca") {
            roots.add(c).expect("a CA");
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("verifier");
        verifier
            .verify_client_cert(der, &[], rustls_pki_types::UnixTime::now())
            .expect("the station certificate chains to the site CA");

        let before = ServerTls::load(&files(dir.path())).expect("load");
        assert!(matches!(
            renew_server(dir.path(), &["depot.lan".to_owned()], false),
            Err(GenError::Exists(_))
        ));
        renew_server(dir.path(), &["depot.lan".to_owned()], true).expect("renewed");
        let summary = before.reload().expect("the renewed certificate loads");
        assert_eq!(summary.names, vec!["depot.lan".to_owned()]);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_its_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let other = tempfile::tempdir().expect("temp dir");
        init(dir.path(), &hosts(), false).expect("init");
        init(other.path(), &hosts(), false).expect("init");
        let mut tls = files(dir.path());
        tls.key_file = other.path().join(SERVER_KEY);
        let err = ServerTls::load(&tls).expect_err("mismatched key");
        assert_eq!(err.key, "tls.key_file");
        assert!(err.to_string().starts_with("tls.key_file: "), "{err}");
        assert!(
            err.problem.contains("is not the key of the certificate"),
            "{err}"
        );
        tls.key_file = dir.path().join(SERVER_KEY);
        tls.cert_file = dir.path().join(SERVER_KEY);
        let err = ServerTls::load(&tls).expect_err("a key is not a certificate");
        assert_eq!(err.key, "tls.cert_file");
        assert!(err.problem.contains("holds no certificate"), "{err}");
    }
}
