//! Mutual TLS for the node's ports (rustls with the ring provider). Off by default.
//!
//! When a port has TLS, it speaks nothing else: it presents this node's certificate, and
//! it accepts a connection only from a client whose certificate its CA signed. Outgoing
//! peer connections present the same certificate and check the peer's against the same
//! CA, by the address they dial (so a node's certificate must name every address its
//! peers use for it, e.g. `127.0.0.1` behind a local proxy).
//!
//! What the CA signs is the cluster: any holder of a certificate it signed is a peer (on
//! the peer port) or a client (on the API port). The cluster id and sender headers still
//! apply on top; docs/security.md says what each protects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The three files that switch TLS on for a port.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// This node's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that sign every member (peer port) or client (API port).
    pub ca: PathBuf,
}

/// Why TLS could not be set up: always names the file and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {path} is not PEM: {detail}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the {what} {path} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("TLS set-up failed ({context}): {source}")]
    Config {
        context: &'static str,
        source: rustls::Error,
    },
}

/// A port's TLS: what its server presents and checks, and (on the peer port) what its
/// outgoing connections present and check.
#[derive(Clone)]
pub struct Tls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Explicit, so that no other crate's choice of default provider can change ours.
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "private key";
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "PRIVATE KEY block",
        },
        e => TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    })
}

impl Tls {
    /// Reads and checks the three files: the key must match the certificate, and the CA
    /// must be usable as a trust anchor.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let chain = certificates("certificate", &files.cert)?;
        let key = private_key(&files.key)?;
        let mut roots = RootCertStore::empty();
        for ca in certificates("CA certificate", &files.ca)? {
            roots.add(ca).map_err(|source| TlsError::Config {
                context: "the CA certificate cannot be a trust anchor",
                source,
            })?;
        }
        let roots = Arc::new(roots);
        let config = |context| move |source| TlsError::Config { context, source };

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Config {
                context: "client certificate verifier",
                source: rustls::Error::General(e.to_string()),
            })?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config("protocol versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config("the certificate and key do not go together"))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config("protocol versions"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config("the certificate and key do not go together"))?;
        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// What accepts this port's connections.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}
