//! `--tls`: the run's own certificate authority, and how the runner talks to nodes.
//!
//! For a TLS run the runner makes a CA, a certificate per node naming every address the
//! node is dialled at (its own, and 127.0.0.1 where the proxies listen), and one for its
//! own clients, all in the run's `tls/` folder. Each node gets them as raft-node's
//! `--peer-*` and `--client-*` flags, so both of its ports speak only mutual TLS. The
//! files stay with the run: `curl --cacert tls/ca.pem --cert tls/client.pem --key
//! tls/client-key.pem https://...` reaches the nodes of a run started again by hand.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One node's TLS files: the same certificate and CA serve both of its ports.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl NodeTls {
    /// raft-node's flags for mutual TLS on both ports.
    pub fn args(&self) -> Vec<String> {
        let (cert, key, ca) = (
            self.cert.display().to_string(),
            self.key.display().to_string(),
            self.ca.display().to_string(),
        );
        [
            "--peer-cert",
            &cert,
            "--peer-key",
            &key,
            "--peer-ca",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--client-ca",
            &ca,
        ]
        .map(String::from)
        .to_vec()
    }
}

/// How the runner reaches the nodes' client APIs: plain HTTP, or TLS with the run's
/// client certificate. Every request the runner makes (the workload's, and its own
/// status and leader questions) goes the same way.
#[derive(Clone, Default)]
pub struct ApiAccess {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ApiAccess {
    /// The TLS client configuration, when the nodes speak TLS.
    pub fn client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// Sends `request` to `addr` (`ip:port`) on a fresh connection and reads the answer
    /// to its end (the request must say `Connection: close`).
    pub async fn exchange(&self, addr: &str, request: &[u8]) -> Option<Vec<u8>> {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let Some(config) = &self.tls else {
            return round_trip(stream, request).await;
        };
        let ip: IpAddr = addr.parse::<SocketAddr>().ok()?.ip();
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::IpAddress(ip.into()), stream)
            .await
            .ok()?;
        round_trip(stream, request).await
    }
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> Option<Vec<u8>> {
    s.write_all(request).await.ok()?;
    let mut buf = Vec::new();
    // A TLS server may close without close_notify: what arrived is still the answer.
    let _ = s.read_to_end(&mut buf).await;
    (!buf.is_empty()).then_some(buf)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate signed by `ca` for `addresses`, good for serving and for dialling.
fn leaf(
    name: &str,
    addresses: &[IpAddr],
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let sans: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    let mut params = CertificateParams::new(sans).context("certificate names")?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, ca, ca_key)
        .context("cannot sign a certificate")?;
    Ok((cert, key))
}

/// Writes a file that only this user may read (private keys).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Makes the run's CA and certificates in `dir`: one per node of `nodes` (id, the
/// address it listens on), each also naming 127.0.0.1, and the runner's client
/// certificate. Returns each node's files and the runner's way in.
pub fn create(dir: &Path, nodes: &[(u64, IpAddr)]) -> Result<(BTreeMap<u64, NodeTls>, ApiAccess)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "chaos-runner run CA");
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let ca = params
        .self_signed(&ca_key)
        .context("cannot make the CA certificate")?;
    let ca_path = dir.join("ca.pem");
    write(&ca_path, &ca.pem())?;

    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut files = BTreeMap::new();
    for &(id, addr) in nodes {
        let mut addresses = vec![addr];
        if addr != loopback {
            addresses.push(loopback);
        }
        let (cert, key) = leaf(&format!("node {id}"), &addresses, &ca, &ca_key)?;
        let node = NodeTls {
            cert: dir.join(format!("n{id}.pem")),
            key: dir.join(format!("n{id}-key.pem")),
            ca: ca_path.clone(),
        };
        write(&node.cert, &cert.pem())?;
        write_private(&node.key, &key.serialize_pem())?;
        files.insert(id, node);
    }

    let (cert, key) = leaf("chaos-runner client", &[loopback], &ca, &ca_key)?;
    write(&dir.join("client.pem"), &cert.pem())?;
    write_private(&dir.join("client-key.pem"), &key.serialize_pem())?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.der().clone())
        .context("the run's CA is not a usable trust anchor")?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .context("the client certificate and key do not go together")?;
    Ok((
        files,
        ApiAccess {
            tls: Some(Arc::new(client)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// A server presenting node `node`'s certificate and asking for a client one.
    fn node_server(node: &NodeTls) -> tokio_rustls::TlsAcceptor {
        let chain = vec![CertificateDer::from_pem_file(&node.cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&node.key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&node.ca).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Whether the runner's client completes a handshake (both ways) with `server` when
    /// it dials `ip`, over an in-memory pipe.
    async fn handshake(server: &tokio_rustls::TlsAcceptor, access: &ApiAccess, ip: IpAddr) -> bool {
        let (a, b) = tokio::io::duplex(1 << 16);
        let connector = tokio_rustls::TlsConnector::from(access.client_config().unwrap());
        let client = async {
            let mut s = connector
                .connect(ServerName::IpAddress(ip.into()), a)
                .await
                .ok()?;
            s.write_all(b"ping").await.ok()?;
            s.flush().await.ok()?;
            // Wait for the answer: the server writes after its side of the handshake.
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.ok()?;
            (&buf == b"pong").then_some(())
        };
        let server = async {
            let mut s = server.accept(b).await.ok()?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.ok()?;
            s.write_all(b"pong").await.ok()?;
            s.flush().await.ok()?;
            (&buf == b"ping").then_some(())
        };
        let (c, s) = tokio::join!(client, server);
        c.is_some() && s.is_some()
    }

    /// A node's certificate names its own address and loopback and nothing else, the
    /// runner's client certificate is one the node accepts, and keys are the user's only.
    #[tokio::test]
    async fn a_run_ca_signs_what_the_nodes_and_runner_need() {
        let dir = tempfile::tempdir().unwrap();
        let addr = IpAddr::from([198, 18, 0, 1]);
        let (files, access) = create(dir.path(), &[(1, addr)]).unwrap();
        let server = node_server(&files[&1]);
        assert!(handshake(&server, &access, addr).await);
        assert!(handshake(&server, &access, IpAddr::from([127, 0, 0, 1])).await);
        assert!(!handshake(&server, &access, IpAddr::from([198, 18, 0, 2])).await);
        // Another run's client is a stranger.
        let other = tempfile::tempdir().unwrap();
        let (_, stranger) = create(other.path(), &[(1, addr)]).unwrap();
        assert!(!handshake(&server, &stranger, addr).await);
        use std::os::unix::fs::PermissionsExt;
        for key in [files[&1].key.clone(), dir.path().join("client-key.pem")] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} readable by others: {mode:o}",
                key.display()
            );
        }
    }
}
