//! TLS for the MQTT connection with rustls (ring provider): the broker's
//! certificate is always verified, against `ca_file` or the system's trust
//! store; an optional client certificate authenticates the daemon.

use std::path::Path;
use std::sync::Arc;

use rumqttc::TlsConfiguration;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::TlsConfig;

/// Builds the rustls client configuration for `tls`; relative paths are
/// resolved against `base` (the config file's folder).
///
/// # Errors
/// A message naming the file and what is wrong with it (missing, not PEM,
/// no certificate or key inside).
pub(crate) fn client_config(tls: &TlsConfig, base: &Path) -> Result<TlsConfiguration, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(f) => {
            let p = base.join(f);
            let certs = read_certs(&p, "tls.ca_file")?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    format!(
                        "tls.ca_file {}: not a usable CA certificate: {e}",
                        p.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // Skip the odd malformed system certificate, as browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("tls: no ca_file given and the system trust store is empty; install the ca-certificates package or set tls.ca_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => {
            let cp = base.join(c);
            let kp = base.join(k);
            let chain = read_certs(&cp, "tls.cert_file")?;
            let pem = crate::read::read_capped(&kp, crate::read::TEXT_MAX_BYTES)
                .map_err(|e| format!("tls.key_file {}: {e}", kp.display()))?;
            if let Some(w) = crate::read::secret_exposure(&kp, "tls.key_file") {
                log::warn!("{w}");
            }
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                format!(
                    "tls.key_file {}: no PEM private key could be read ({e}); give the client certificate's key in PEM (PKCS#8, PKCS#1 or SEC1)",
                    kp.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "tls.cert_file {} / tls.key_file {}: {e}",
                    cp.display(),
                    kp.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

fn read_certs(p: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::read::read_capped(p, crate::read::TEXT_MAX_BYTES)
        .map_err(|e| format!("{field} {}: {e}", p.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{field} {}: not a PEM certificate file: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{field} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            p.display()
        ));
    }
    Ok(certs)
}
