//! PostgreSQL connection options that tokio-postgres does not read itself: TLS as libpq
//! means it (`sslmode`, `sslrootcert`), turned into a rustls client configuration.
//!
//! Must not: connect, or weaken a mode: `verify-ca` and `verify-full` always verify the
//! server's certificate.

use std::sync::Arc;

/// TLS as libpq means it: `sslmode=prefer` (the default) and `require` encrypt without
/// authenticating the server; `verify-ca` and `verify-full` also verify its certificate
/// (both check the host name here) against the system roots or `sslrootcert`.
pub(super) struct TlsOptions {
    /// The URL without the parameters tokio-postgres does not know.
    pub(super) url: String,
    verify: bool,
    root_cert: Option<String>,
}

impl TlsOptions {
    pub(super) fn from_url(url: &str) -> std::result::Result<TlsOptions, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut verify, mut root_cert) = (false, None);
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("sslmode", "verify-ca" | "verify-full")) => {
                    verify = true;
                    kept.push("sslmode=require".to_string());
                }
                Some(("sslrootcert", path)) => root_cert = Some(path.to_string()),
                _ => kept.push(param.to_string()),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(TlsOptions {
            url,
            verify,
            root_cert,
        })
    }

    pub(super) fn client_config(&self) -> std::result::Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        if !self.verify {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                for cert in certs {
                    roots
                        .add(cert.map_err(|e| format!("sslrootcert {path}: {e}"))?)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }
}

/// libpq's `sslmode=require`: the channel is encrypted and the handshake's signatures are
/// checked, but the certificate itself is not trusted or rejected.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_follow_libpq() {
        let t = TlsOptions::from_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            t.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        assert!(t.verify);
        assert_eq!(t.root_cert.as_deref(), Some("/ca.pem"));
        let t = TlsOptions::from_url("postgres://u@h/db").unwrap();
        assert!(!t.verify);
        assert_eq!(t.url, "postgres://u@h/db");
    }
}
