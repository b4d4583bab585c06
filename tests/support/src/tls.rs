//! Test certificates: a fresh CA per server, and server certificates it
//! signs, valid or deliberately not (expired, for another host).

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// The names a valid test certificate is for: loopback, and a name only
/// a test's own DNS server ([`crate::dns::DnsServer`]) resolves.
pub const VALID_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "::1", TEST_HOST_NAME];
/// A host name in a reserved top-level domain (RFC 6761), which no public
/// resolver answers.
pub const TEST_HOST_NAME: &str = "partner.callbacks.test";

/// A certificate authority that exists only in this test process.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

/// What a server certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// For [`VALID_NAMES`], valid now.
    Valid,
    /// For [`VALID_NAMES`], expired in 2020.
    Expired,
    /// Valid now, for `other.example.com` only.
    WrongHost,
}

impl TestCa {
    pub fn new() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the test CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Partner Callbacks test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .context("self-signing the test CA")?;
        Ok(Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, for a client to trust.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server configuration presenting a certificate of `validity`
    /// signed by this CA, offering `alpn` (most preferred first).
    pub fn server_config(
        &self,
        validity: Validity,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let names: Vec<String> = match validity {
            Validity::WrongHost => vec!["other.example.com".to_owned()],
            _ => VALID_NAMES.iter().map(|n| (*n).to_owned()).collect(),
        };
        self.signed_config(names, validity == Validity::Expired, alpn)
    }

    /// A server configuration presenting a certificate valid now for
    /// `names` (a `*.` wildcard covers one label), signed by this CA: for
    /// a server that stands for many hosts, as the bench's does.
    pub fn server_config_for(
        &self,
        names: &[&str],
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.signed_config(names, false, alpn)
    }

    fn signed_config(
        &self,
        names: Vec<String>,
        expired: bool,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let key = KeyPair::generate().context("generating the server key")?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "test server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the server certificate")?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("choosing TLS versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), self.der.clone()],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .context("building the TLS server config")?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}
