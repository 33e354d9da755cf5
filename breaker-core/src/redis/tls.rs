//! TLS settings for `rediss://` connections (feature `redis-tls`).

use ::redis::{Client, ClientTlsConfig, ConnectionInfo, RedisResult, TlsCertificates};

/// How a [`RedisStorage`](crate::RedisStorage) checks the server and shows
/// itself over TLS (feature `redis-tls`): a CA to trust instead of the
/// system's roots, and a client certificate for servers that require one
/// (`tls-auth-clients yes`). Give it to
/// [`RedisStorageBuilder::tls`](super::RedisStorageBuilder::tls) with a
/// `rediss://` URL. Certificates and keys are PEM.
///
/// Without it, a `rediss://` URL connects with the system's roots and no
/// client certificate. TLS goes through rustls with the `ring` provider,
/// installed as the process's default provider if none is yet.
///
/// # Example
/// ```
/// use breaker::redis::RedisTls;
/// use breaker::RedisStorage;
///
/// # let (ca, cert, key) = (Vec::new(), Vec::new(), Vec::new());
/// // let ca = std::fs::read("/etc/redis/ca.crt")?; and so on.
/// let tls = RedisTls::new().root_cert_pem(ca).client_cert_pem(cert, key);
/// let builder = RedisStorage::builder("rediss://redis.internal:6380/").tls(tls);
/// # let _ = builder;
/// ```
#[derive(Clone, Default)]
pub struct RedisTls {
    root_cert: Option<Vec<u8>>,
    client: Option<ClientTlsConfig>,
}

impl RedisTls {
    /// No custom CA, no client certificate.
    ///
    /// ```
    /// let tls = breaker::redis::RedisTls::new();
    /// # let _ = tls;
    /// ```
    pub fn new() -> Self {
        RedisTls::default()
    }

    /// Trust the CA (or CAs) in `pem` to sign the server's certificate,
    /// instead of the system's roots.
    ///
    /// ```
    /// # let ca = Vec::new();
    /// let tls = breaker::redis::RedisTls::new().root_cert_pem(ca);
    /// # let _ = tls;
    /// ```
    pub fn root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    /// Present this certificate chain and private key (both PEM) to the
    /// server.
    ///
    /// ```
    /// # let (cert, key) = (Vec::new(), Vec::new());
    /// let tls = breaker::redis::RedisTls::new().client_cert_pem(cert, key);
    /// # let _ = tls;
    /// ```
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client = Some(ClientTlsConfig {
            client_cert: cert.into(),
            client_key: key.into(),
        });
        self
    }

    pub(crate) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.clone(),
            root_cert: self.root_cert.clone(),
        }
    }
}

impl std::fmt::Debug for RedisTls {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("root_cert", &self.root_cert.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

/// Installs rustls's `ring` provider as the process default unless one is.
pub(crate) fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for `info`, over TLS with `tls` when given.
pub(crate) fn client(info: ConnectionInfo, tls: Option<&RedisTls>) -> RedisResult<Client> {
    match tls {
        Some(tls) => {
            install_provider();
            Client::build_with_tls(info, tls.certificates())
        }
        None => Client::open(info),
    }
}
