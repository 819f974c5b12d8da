//! TLS for peer links: self-signed certificates generated from the member's Ed25519 key, and
//! the rustls verifiers that accept a peer only if its certificate key is in the
//! [`TrustSet`] (pinned keys, no CA, no name checks).
//!
//! Both directions are TLS 1.3 only with mandatory client authentication, Ed25519 handshake
//! signatures, and session resumption disabled so every link re-checks the trust set.

use std::sync::Arc;

use consort_crypto::{MemberId, PublicKey, SecretKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};
use x509_parser::oid_registry::OID_SIG_ED25519;

use super::{PeerError, TrustSet, SNI_NAME};

/// A member's TLS identity: its self-signed certificate and the loaded signing key.
///
/// The key's PKCS#8 DER is only borrowed (from the zeroizing buffer of
/// [`SecretKey::to_pkcs8_der`]) to load the signing key; no copy of it is kept.
pub struct PeerIdentity {
    certified: Arc<CertifiedKey>,
    cert: CertificateDer<'static>,
    public_key: PublicKey,
    member_id: MemberId,
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("member_id", &self.member_id)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl PeerIdentity {
    /// Loads the member key and generates a self-signed X.509 certificate for it.
    pub fn from_secret_key(key: &SecretKey) -> Result<Self, PeerError> {
        let signing = {
            let pkcs8 = key.to_pkcs8_der();
            rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8.as_slice()))
                .map_err(|e| PeerError::Identity(format!("member key rejected by rustls: {e}")))?
        };
        let public_key = key.public_key();
        let key_pair = rcgen::KeyPair::from_remote(Box::new(CertSigner {
            public: public_key.0,
            key: signing.clone(),
        }))
        .map_err(|e| PeerError::Identity(format!("member key rejected by rcgen: {e}")))?;
        let mut params = rcgen::CertificateParams::new(vec![SNI_NAME.to_string()])
            .map_err(|e| PeerError::Identity(format!("certificate parameters: {e}")))?;
        let member_id = key.member_id();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("consort member {member_id}"),
        );
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| PeerError::Identity(format!("self-signing certificate: {e}")))?;
        let cert = cert.der().clone();
        // Sanity check: the certificate must carry exactly our key.
        let cert_key = ed25519_key_from_cert(&cert)
            .map_err(|e| PeerError::Identity(format!("generated certificate: {e}")))?;
        if cert_key != public_key {
            return Err(PeerError::Identity(
                "generated certificate does not carry the member key".into(),
            ));
        }
        Ok(Self {
            certified: Arc::new(CertifiedKey::new(vec![cert.clone()], signing)),
            cert,
            public_key,
            member_id,
        })
    }

    /// The DER certificate presented to peers.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }
    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }
    /// Our member id.
    pub fn member_id(&self) -> MemberId {
        self.member_id
    }
}

/// Lets rcgen self-sign with the already-loaded rustls signing key.
struct CertSigner {
    public: [u8; 32],
    key: Arc<dyn SigningKey>,
}

impl rcgen::RemoteKeyPair for CertSigner {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signer = self
            .key
            .choose_scheme(&[SignatureScheme::ED25519])
            .ok_or(rcgen::Error::RingUnspecified)?;
        signer.sign(msg).map_err(|_| rcgen::Error::RingUnspecified)
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

/// Always presents our one certificate (both as server and as client).
#[derive(Debug)]
struct OwnCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OwnCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for OwnCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Error carried inside rustls when the verifier meets a key outside the trust set.
#[derive(Debug, thiserror::Error)]
#[error("unknown peer key {0}: not a current consortium member")]
pub struct UnknownKey(pub PublicKey);

/// Extracts the raw 32-byte Ed25519 key from a DER certificate's SPKI.
pub fn ed25519_key_from_cert(cert: &CertificateDer<'_>) -> Result<PublicKey, PeerError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| PeerError::CertNotX509)?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(PeerError::CertNotEd25519);
    }
    let raw: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| PeerError::CertNotEd25519)?;
    Ok(PublicKey(raw))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Shared pinned-key check used by both verifiers.
#[derive(Debug)]
struct PinnedKeys {
    trust: TrustSet,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedKeys {
    fn new(trust: TrustSet, provider: &CryptoProvider) -> Self {
        Self {
            trust,
            algs: provider.signature_verification_algorithms,
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let key = ed25519_key_from_cert(end_entity).map_err(|e| match e {
            PeerError::CertNotX509 => {
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
            }
            other => rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(other)),
            )),
        })?;
        if self.trust.contains(&key) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(UnknownKey(key))),
            )))
        }
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not supported on peer links".into())
}

#[derive(Debug)]
struct PinnedServerVerifier(PinnedKeys);

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[derive(Debug)]
struct PinnedClientVerifier(PinnedKeys);

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn tls_err(e: rustls::Error) -> PeerError {
    PeerError::Identity(format!("TLS configuration: {e}"))
}

/// Server-side rustls configuration: TLS 1.3, mandatory pinned-key client auth.
pub(crate) fn server_config(
    identity: &PeerIdentity,
    trust: TrustSet,
) -> Result<Arc<rustls::ServerConfig>, PeerError> {
    let provider = provider();
    let verifier = Arc::new(PinnedClientVerifier(PinnedKeys::new(trust, &provider)));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(OwnCert(identity.certified.clone())));
    // No resumption: every link must pass the (live) trust set check.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Client-side rustls configuration: TLS 1.3, pinned-key server verification, our cert.
pub(crate) fn client_config(
    identity: &PeerIdentity,
    trust: TrustSet,
) -> Result<Arc<rustls::ClientConfig>, PeerError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier(PinnedKeys::new(trust, &provider)));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(OwnCert(identity.certified.clone())));
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The fixed server name used for every outgoing link.
pub(crate) fn server_name() -> Result<ServerName<'static>, PeerError> {
    ServerName::try_from(SNI_NAME).map_err(|e| PeerError::Identity(format!("server name: {e}")))
}

/// Maps a failed TLS handshake (as surfaced by tokio-rustls) to a [`PeerError`].
pub(crate) fn classify_handshake_error(err: std::io::Error, peer: &str) -> PeerError {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => PeerError::Disconnected {
                peer: peer.to_string(),
            },
            _ => PeerError::Io(err),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<UnknownKey>() {
                Some(UnknownKey(key)) => PeerError::UnknownPeerKey { key: *key },
                None => PeerError::Tls(tls.to_string()),
            }
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateUnknown
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError),
        ) => PeerError::RefusedByPeer {
            peer: peer.to_string(),
            reason: format!("TLS alert {alert:?}"),
        },
        other => PeerError::Tls(other.to_string()),
    }
}
