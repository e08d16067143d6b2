//! TLS for PostgreSQL connections with libpq's `sslmode` meanings, on rustls:
//!
//! - `disable`: plain connections only.
//! - `allow`, `prefer` (the default) and `require`: encrypted when the server offers TLS
//!   (`require`: always), the certificate not checked, as libpq does. With `sslrootcert`,
//!   `require` checks the chain like `verify-ca`, again as libpq does.
//! - `verify-ca`: the certificate must chain to a trusted root.
//! - `verify-full`: and it must name the host connected to.
//!
//! Trusted roots come from the PEM file `sslrootcert=/path/ca.pem`, or else Mozilla's root
//! set (`webpki-roots`). tokio-postgres itself knows only `disable`, `prefer` and
//! `require`, so the URL is rewritten before it sees it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::MetastoreError;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    /// Nothing: `disable`, `prefer`, `require` without a root file.
    Nothing,
    /// The chain (`verify-ca`, or `require` with a root file).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndHost,
}

/// The TLS settings of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub verify: Verify,
    pub root_cert: Option<String>,
}

fn invalid(reason: String) -> MetastoreError {
    MetastoreError::Unavailable(format!("the PostgreSQL URL is not valid: {reason}"))
}

/// Takes libpq's TLS parameters out of a `postgres://` URL: returns the URL tokio-postgres
/// accepts (`verify-ca`/`verify-full` become `require`, `sslrootcert` is removed) and the
/// settings. Messages never quote the URL, which may hold a password.
pub(super) fn split_url(url: &str) -> Result<(String, TlsSettings), MetastoreError> {
    let mut settings = TlsSettings {
        verify: Verify::Nothing,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), settings));
    };
    let mut kept = Vec::new();
    let mut mode = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(percent_decode(value)?),
            "sslrootcert" => settings.root_cert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let mode = mode.unwrap_or_else(|| "prefer".to_owned());
    let (driver_mode, verify) = match mode.as_str() {
        "disable" => ("disable", Verify::Nothing),
        // `allow` tries plain text first; `prefer` tries TLS first: both connect to either
        // kind of server.
        "allow" | "prefer" => ("prefer", Verify::Nothing),
        "require" if settings.root_cert.is_some() => ("require", Verify::Chain),
        "require" => ("require", Verify::Nothing),
        "verify-ca" => ("require", Verify::Chain),
        "verify-full" => ("require", Verify::ChainAndHost),
        other => {
            return Err(invalid(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    settings.verify = verify;
    let sslmode = format!("sslmode={driver_mode}");
    kept.push(&sslmode);
    Ok((format!("{base}?{}", kept.join("&")), settings))
}

fn percent_decode(value: &str) -> Result<String, MetastoreError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = value
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| invalid("a query parameter has a bad %-escape".to_owned()))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| invalid("a query parameter is not UTF-8 once decoded".to_owned()))
}

/// Builds the connector the pool uses for these settings.
pub(super) fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, MetastoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| MetastoreError::Unavailable(format!("setting up TLS: {err}")))?;
    let config = match settings.verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Verify::Chain | Verify::ChainAndHost => {
            let roots = root_store(settings.root_cert.as_deref())?;
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|err| {
                        MetastoreError::Unavailable(format!("setting up TLS verification: {err}"))
                    })?;
            if settings.verify == Verify::ChainAndHost {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyHostName(verifier)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn root_store(root_cert: Option<&str>) -> Result<RootCertStore, MetastoreError> {
    let mut roots = RootCertStore::empty();
    let Some(path) = root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let unusable = |reason: String| {
        MetastoreError::Unavailable(format!("sslrootcert {path} is not usable: {reason}"))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| unusable(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| unusable(err.to_string()))?;
    if certificates.is_empty() {
        return Err(unusable("it holds no PEM certificate".to_owned()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|err| unusable(err.to_string()))?;
    }
    Ok(roots)
}

/// Accepts any certificate (libpq's `prefer` and `require`), while still checking that the
/// server holds its key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks the chain but not the host name (`verify-ca`).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_are_mapped_for_the_driver() {
        let (url, settings) = split_url("postgres://u:p@db/x").unwrap();
        assert_eq!(url, "postgres://u:p@db/x");
        assert_eq!(settings.verify, Verify::Nothing);
        let (url, settings) =
            split_url("postgres://u:p@db/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(
            url,
            "postgres://u:p@db/x?application_name=a&sslmode=require"
        );
        assert_eq!(settings.verify, Verify::ChainAndHost);
        assert_eq!(settings.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (url, settings) = split_url("postgres://db/x?sslmode=verify-ca").unwrap();
        assert_eq!(url, "postgres://db/x?sslmode=require");
        assert_eq!(settings.verify, Verify::Chain);
        let (_, settings) =
            split_url("postgres://db/x?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(settings.verify, Verify::Chain);
        let (url, _) = split_url("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://db/x?sslmode=disable");
        let err = split_url("postgres://u:secret@db/x?sslmode=sometimes").unwrap_err();
        assert!(
            err.to_string().contains("sslmode=sometimes") && !err.to_string().contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_root_file_is_reported() {
        let settings = TlsSettings {
            verify: Verify::ChainAndHost,
            root_cert: Some("/nonexistent/ca.pem".to_owned()),
        };
        let Err(err) = connector(&settings) else {
            panic!("a missing root file was accepted");
        };
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert!(
            connector(&TlsSettings {
                verify: Verify::ChainAndHost,
                root_cert: None
            })
            .is_ok()
        );
    }
}
