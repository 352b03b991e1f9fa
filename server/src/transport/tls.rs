//! TLS material for the client and peer listeners, following etcd 3.4's `pkg/transport`.
//!
//! This module owns turning a [`TlsSettings`] (etcd's `--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`, `--crl-file`, `--auto-tls` and their `--peer-*`
//! twins) into a `rustls` server or client configuration, including generating etcd's
//! self-signed auto-TLS certificate under `<data-dir>/fixtures/{client,peer}`.
//! It also offers [`PeerTlsConnector`], the TLS dialer for peer connections.
//!
//! It must never open listeners, serve requests, or read anything but the files it is
//! pointed at; it never panics on bad files: every problem is a [`TlsError`].
//!
//! etcd 3.4 behaviour mirrored here:
//! * cert and key must both be given (or neither, with auto-TLS); auto-TLS is ignored when
//!   they are given, and a self-signed certificate drops the CA, client-auth and CRL settings;
//! * a trusted CA file alone already makes the server *require* verified client
//!   certificates (etcd documents this for `--trusted-ca-file`);
//! * a CRL rejects client certificates it lists; certificates whose issuer published no CRL
//!   are accepted (etcd only compares serial numbers against the file);
//! * a peer dialing with a self-signed auto-TLS certificate skips server verification
//!   (etcd's `InsecureSkipVerify` for `selfCert`).
//!
//! Crypto comes from `ring` only (never aws-lc).

use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// ALPN protocols the listeners offer: gRPC needs `h2`, the JSON gateway and `/health`
/// are also reached over `http/1.1`.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Validity of an auto-TLS certificate (etcd: one year).
const SELF_CERT_VALIDITY_DAYS: i64 = 365;

/// One listener's TLS flags, exactly as etcd's configuration spells them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--cert-file` / `--peer-cert-file`: PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// `--key-file` / `--peer-key-file`: PEM private key (PKCS#1, SEC1 or PKCS#8).
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`: PEM CA bundle.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` / `--peer-client-cert-auth`.
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`: CRL, PEM or DER.
    pub crl_file: Option<PathBuf>,
    /// `--auto-tls` / `--peer-auto-tls`.
    pub auto_tls: bool,
}

impl TlsSettings {
    /// etcd's `TLSInfo.Empty()`: neither a certificate nor a key file was given.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }

    /// Whether a listener with these settings can serve TLS (files given, or auto-TLS).
    pub fn is_enabled(&self) -> bool {
        !self.is_empty() || self.auto_tls
    }
}

/// Why TLS material could not be loaded or a configuration built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file could not be read.
    #[error("open {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure (e.g. not found, permission denied).
        source: io::Error,
    },
    /// A file that should hold PEM certificates holds none.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{}: no PEM private key found", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A file holds malformed PEM or DER.
    #[error("{}: bad PEM: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A certificate in the trusted CA file was rejected.
    #[error("{}: bad CA certificate: {reason}", path.display())]
    BadCaCertificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Only one of certificate and key was given (etcd's wording).
    #[error("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")]
    MissingCertOrKey {
        /// The key file, or empty.
        key: String,
        /// The certificate file, or empty.
        cert: String,
    },
    /// Client certificate authentication was asked for without a CA to verify against.
    #[error("client certificate authentication requires a trusted CA file (--trusted-ca-file)")]
    ClientCertAuthWithoutCa,
    /// A peer connection would have to verify the remote certificate but has no CA.
    #[error("cannot verify the remote TLS certificate: no trusted CA file (--peer-trusted-ca-file) given")]
    NoTrustedCa,
    /// The auto-TLS directory or files could not be written.
    #[error("auto TLS: cannot write {}: {source}", path.display())]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// The I/O failure.
        source: io::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("auto TLS: cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The client certificate verifier (trusted CA, CRL) could not be built.
    #[error("invalid client certificate verification settings: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls rejected the material (e.g. the key does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files a listener ends up using once auto-TLS is resolved.
#[derive(Debug)]
struct Material {
    cert: PathBuf,
    key: PathBuf,
    trusted_ca: Option<PathBuf>,
    client_cert_auth: bool,
    crl: Option<PathBuf>,
}

/// Builds the server-side TLS configuration of a client or peer listener.
///
/// With `auto_tls` and no cert/key files, a self-signed certificate for `hosts` (listen
/// URL hosts, `host:port` or bare) is created in `auto_tls_dir` — etcd uses
/// `<data-dir>/fixtures/client` and `<data-dir>/fixtures/peer` — or reused if
/// `cert.pem` and `key.pem` already exist there.
pub fn server_config(
    s: &TlsSettings,
    auto_tls_dir: &Path,
    hosts: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    let material = resolve(s, auto_tls_dir, hosts)?;
    let provider = provider();
    let (chain, key) = load_key_pair(&material.cert, &material.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_verifier(&material, provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Builds the TLS configuration a peer uses to dial other peers.
///
/// The cert/key pair, when given, is offered as the client certificate; the remote is
/// verified against the trusted CA file. With auto-TLS (and no cert/key) nothing is
/// verified, as etcd does for self-signed peer certificates.
pub fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if s.is_empty() && s.auto_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider)))
    } else {
        let ca = s.trusted_ca_file.as_deref().ok_or(TlsError::NoTrustedCa)?;
        builder.with_root_certificates(load_roots(ca)?)
    };
    let mut config = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let (chain, key) = load_key_pair(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(missing_cert_or_key(s)),
    };
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The only crypto provider Synod uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Applies etcd's auto-TLS rules and returns the files to load.
fn resolve(s: &TlsSettings, auto_tls_dir: &Path, hosts: &[String]) -> Result<Material, TlsError> {
    match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            if s.auto_tls {
                tracing::warn!("ignoring auto TLS since certs given");
            }
            Ok(Material {
                cert: cert.clone(),
                key: key.clone(),
                trusted_ca: s.trusted_ca_file.clone(),
                client_cert_auth: s.client_cert_auth,
                crl: s.crl_file.clone(),
            })
        }
        (None, None) if s.auto_tls => {
            if s.client_cert_auth || s.trusted_ca_file.is_some() || s.crl_file.is_some() {
                tracing::warn!(
                    "auto TLS uses a self-signed certificate; ignoring trusted CA, client cert auth and CRL settings"
                );
            }
            let (cert, key) = self_cert(auto_tls_dir, hosts)?;
            Ok(Material {
                cert,
                key,
                trusted_ca: None,
                client_cert_auth: false,
                crl: None,
            })
        }
        _ => Err(missing_cert_or_key(s)),
    }
}

fn missing_cert_or_key(s: &TlsSettings) -> TlsError {
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    TlsError::MissingCertOrKey {
        key: show(&s.key_file),
        cert: show(&s.cert_file),
    }
}

/// The client certificate verifier, if the server must ask for client certificates.
fn client_verifier(
    m: &Material,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    // etcd 3.4: `TrustedCAFile != "" || ClientCertAuth` => RequireAndVerifyClientCert.
    if m.trusted_ca.is_none() && !m.client_cert_auth {
        if m.crl.is_some() {
            tracing::warn!(
                "CRL file given without client certificate authentication; it has no effect"
            );
        }
        return Ok(None);
    }
    let ca = m
        .trusted_ca
        .as_deref()
        .ok_or(TlsError::ClientCertAuthWithoutCa)?;
    let roots = Arc::new(load_roots(ca)?);
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider);
    if let Some(crl) = &m.crl {
        builder = builder
            .with_crls(load_crls(crl)?)
            .allow_unknown_revocation_status();
    }
    Ok(Some(builder.build()?))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad_pem(path: &Path, e: pem::Error) -> TlsError {
    TlsError::BadPem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Every PEM certificate in `path`, in file order.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => bad_pem(path, other),
    })
}

fn load_key_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((load_certs(cert)?, load_key(key)?))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::BadCaCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// CRLs from a PEM (`X509 CRL` blocks) or DER file.
fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, e))?;
    if crls.is_empty() {
        return Err(TlsError::BadPem {
            path: path.to_path_buf(),
            reason: "no X509 CRL block".into(),
        });
    }
    Ok(crls)
}

/// etcd's `transport.SelfCert`: reuse `dir/cert.pem` + `dir/key.pem`, or create them.
fn self_cert(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    create_private_dir(dir)?;
    let (cert_pem, key_pem) = generate_self_signed(hosts)?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    write_file(&key_path, key_pem.as_bytes(), 0o600)?;
    tracing::info!(cert = %cert_path.display(), key = %key_path.display(), "created auto TLS cert and key files");
    Ok((cert_path, key_path))
}

/// A self-signed leaf like etcd's: O=etcd, server auth, one year, SANs from `hosts`.
fn generate_self_signed(hosts: &[String]) -> Result<(String, String), TlsError> {
    let names: Vec<String> = hosts.iter().filter_map(|h| san_host(h)).collect();
    let mut params = rcgen::CertificateParams::new(names)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(SELF_CERT_VALIDITY_DAYS);
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive, full length
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The host part of `host:port`, `[v6]:port`, `[v6]`, a bare IP or a bare name.
fn san_host(host: &str) -> Option<String> {
    let host = host.trim();
    if host.parse::<IpAddr>().is_ok() {
        return Some(host.to_string());
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map(|(ip, _)| ip)?
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    (!name.is_empty()).then(|| name.to_string())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(err)?;
    file.write_all(data).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Accepts any server certificate while still checking handshake signatures
/// (etcd's `InsecureSkipVerify` for self-signed peer certificates).
#[derive(Debug)]
struct SkipServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Dials `https://host:port` URIs over TLS; a `tower::Service<http::Uri>` usable as a
/// tonic connector (`Endpoint::connect_with_connector`) for peer connections.
#[derive(Clone)]
pub struct PeerTlsConnector {
    inner: tokio_rustls::TlsConnector,
}

impl fmt::Debug for PeerTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTlsConnector").finish_non_exhaustive()
    }
}

impl PeerTlsConnector {
    /// A connector using `config` (typically from [`client_config`]).
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self {
            inner: tokio_rustls::TlsConnector::from(config),
        }
    }

    /// Opens a TCP connection to `host:port` and performs the TLS handshake, verifying the
    /// certificate against `host` (a DNS name or IP address).
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TlsStream<TcpStream>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tcp = TcpStream::connect((bare, port)).await?;
        tcp.set_nodelay(true)?;
        self.inner.connect(name, tcp).await
    }
}

impl tower::Service<http::Uri> for PeerTlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}"))
            })?;
            let port = uri.port_u16().unwrap_or(443);
            this.connect(host, port).await.map(TokioIo::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fixture, require_fixtures};
    use super::*;

    fn files(cert: &str, key: &str) -> TlsSettings {
        TlsSettings {
            cert_file: Some(fixture(cert)),
            key_file: Some(fixture(key)),
            ..TlsSettings::default()
        }
    }

    fn no_dir() -> PathBuf {
        PathBuf::from("/nonexistent/synod-auto-tls")
    }

    #[test]
    fn loads_etcd_fixtures() {
        require_fixtures();
        for (cert, key) in [
            ("server.crt", "server.key.insecure"),
            ("server-ecdsa.crt", "server-ecdsa.key.insecure"),
            ("server-ip.crt", "server-ip.key.insecure"),
            ("server-wildcard.crt", "server-wildcard.key.insecure"),
            ("server-revoked.crt", "server-revoked.key.insecure"),
        ] {
            let s = files(cert, key);
            let cfg = server_config(&s, &no_dir(), &[]).unwrap_or_else(|e| panic!("{cert}: {e}"));
            assert_eq!(
                cfg.alpn_protocols,
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }
    }

    #[test]
    fn client_cert_auth_with_ca_and_crl() {
        require_fixtures();
        let mut s = files("server.crt", "server.key.insecure");
        s.trusted_ca_file = Some(fixture("ca.crt"));
        s.client_cert_auth = true;
        s.crl_file = Some(fixture("revoke.crl"));
        server_config(&s, &no_dir(), &[]).expect("server config");
        client_config(&s).expect("client config");
    }

    #[test]
    fn client_cert_auth_without_ca_is_an_error() {
        require_fixtures();
        let mut s = files("server.crt", "server.key.insecure");
        s.client_cert_auth = true;
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert!(matches!(err, TlsError::ClientCertAuthWithoutCa), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let s = TlsSettings {
            cert_file: Some("/nonexistent/server.crt".into()),
            key_file: Some("/nonexistent/server.key".into()),
            ..TlsSettings::default()
        };
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("open /nonexistent/server.crt: "),
            "{err}"
        );
    }

    #[test]
    fn only_cert_is_an_error() {
        let s = TlsSettings {
            cert_file: Some("/x/cert.pem".into()),
            ..TlsSettings::default()
        };
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "KeyFile and CertFile must both be present[key: , cert: /x/cert.pem]"
        );
    }

    #[test]
    fn key_file_without_key_and_mismatched_key() {
        require_fixtures();
        let s = files("server.crt", "ca.crt");
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        let s = files("server.crt", "server2.key.insecure");
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert!(matches!(err, TlsError::Rustls(_)), "{err}");
    }

    #[test]
    fn garbage_pem_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let s = TlsSettings {
            cert_file: Some(cert),
            key_file: Some(dir.path().join("key.pem")),
            ..TlsSettings::default()
        };
        let err = server_config(&s, &no_dir(), &[]).expect_err("must fail");
        assert!(matches!(err, TlsError::BadPem { .. }), "{err}");
    }

    #[test]
    fn auto_tls_generates_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = dir.path().join("fixtures").join("client");
        let s = TlsSettings {
            auto_tls: true,
            client_cert_auth: true,
            ..TlsSettings::default()
        };
        let hosts = vec!["127.0.0.1:2379".to_string(), "localhost:2379".to_string()];
        server_config(&s, &fixtures, &hosts).expect("auto tls");
        let cert = fs::read(fixtures.join("cert.pem")).expect("cert written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(fixtures.join("key.pem"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&s, &fixtures, &hosts).expect("reuse");
        assert_eq!(
            fs::read(fixtures.join("cert.pem")).expect("cert"),
            cert,
            "reused, not regenerated"
        );
        client_config(&s).expect("auto tls client config skips verification");
    }

    #[test]
    fn auto_tls_is_ignored_when_files_given() {
        require_fixtures();
        let mut s = files("server.crt", "server.key.insecure");
        s.auto_tls = true;
        let dir = tempfile::tempdir().expect("tempdir");
        server_config(&s, dir.path(), &["127.0.0.1:2379".into()]).expect("config");
        assert!(!dir.path().join("cert.pem").exists());
    }

    #[test]
    fn san_hosts() {
        assert_eq!(san_host("127.0.0.1:2379").as_deref(), Some("127.0.0.1"));
        assert_eq!(san_host("[::1]:2379").as_deref(), Some("::1"));
        assert_eq!(san_host("::1").as_deref(), Some("::1"));
        assert_eq!(san_host("localhost:2380").as_deref(), Some("localhost"));
        assert_eq!(san_host("example.com").as_deref(), Some("example.com"));
        assert_eq!(san_host(":2379"), None);
    }

    #[test]
    fn peer_client_needs_a_ca() {
        require_fixtures();
        let s = files("server.crt", "server.key.insecure");
        assert!(matches!(client_config(&s), Err(TlsError::NoTrustedCa)));
    }
}
