//! Throwaway TLS material for a local server: a CA and a server certificate.
//!
//! A TLS test needs a certificate the client can *verify*, not one it is told
//! to trust blindly, or it would not test the `rediss://` code path users run.
//! So [`TlsFiles::generate`] makes a self-signed CA and a server certificate
//! signed by it, and the client trusts the CA file. Generation uses `rcgen`
//! (ECDSA P-256, pure Rust) so tests need no `openssl` binary; Redis's
//! OpenSSL reads the PEM files as usual.
//!
//! The server certificate also carries the client-auth usage, so the same pair
//! serves Redis's outgoing TLS links (replication, cluster bus).

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::Error;

/// PEM files for a TLS server: CA certificate, server certificate, server key.
///
/// Generated files live in a temporary directory that is removed when the last
/// clone is dropped (servers keep a clone in their config, so the files outlive
/// the caller's copy as long as a server needs them).
#[derive(Clone)]
pub struct TlsFiles {
    /// The CA certificate clients should trust (`tls-ca-cert-file`).
    pub ca_cert: PathBuf,
    /// The server certificate (`tls-cert-file`).
    pub cert: PathBuf,
    /// The server's private key (`tls-key-file`), mode 0600.
    pub key: PathBuf,
    _dir: Option<Arc<TempDir>>,
}

impl TlsFiles {
    /// A fresh CA and a server certificate for `hostnames` (DNS names or IP
    /// addresses; empty means `localhost` and `127.0.0.1`).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if a name is not a valid DNS name or IP, [`Error::Io`]
    /// if the files cannot be written.
    pub fn generate(hostnames: &[&str]) -> Result<Self, Error> {
        let names: Vec<String> = if hostnames.is_empty() {
            vec!["localhost".into(), "127.0.0.1".into()]
        } else {
            hostnames.iter().map(|h| h.to_string()).collect()
        };
        let tls = |e: rcgen::Error| Error::Tls(e.to_string());

        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "localredis test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(tls)?;
        let mut params = CertificateParams::new(names.clone()).map_err(tls)?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).map_err(tls)?;

        let dir = tempfile::Builder::new()
            .prefix("localredis-tls-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory for TLS files", e))?;
        let files = TlsFiles {
            ca_cert: dir.path().join("ca.crt"),
            cert: dir.path().join("server.crt"),
            key: dir.path().join("server.key"),
            _dir: None,
        };
        write_file(&files.ca_cert, &ca_cert.pem(), 0o644)?;
        write_file(&files.cert, &cert.pem(), 0o644)?;
        write_file(&files.key, &key.serialize_pem(), 0o600)?;
        Ok(TlsFiles {
            _dir: Some(Arc::new(dir)),
            ..files
        })
    }

    /// Use existing PEM files (not removed on drop).
    pub fn existing(
        ca_cert: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        TlsFiles {
            ca_cert: ca_cert.into(),
            cert: cert.into(),
            key: key.into(),
            _dir: None,
        }
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca_cert", &self.ca_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}
