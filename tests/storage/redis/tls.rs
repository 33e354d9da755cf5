//! TLS (feature `redis-tls`): a redis-server with `--tls-port`, certificates
//! made by `openssl` for the test: a CA, the server's certificate for
//! 127.0.0.1 and a client certificate the server requires.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use breaker::redis::{RedisStorageError, RedisTls};
use breaker::{CircuitBreaker, RedisStorage, State};

use super::{bound, eventually};
use crate::support::{self, Server};

/// A CA and the certificates it signed, in a temporary directory.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// `None` (the test skips, or fails in CI) without `openssl`.
    fn make() -> Option<Certs> {
        let found = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("openssl is required in CI for the TLS test: scripts/test installs it");
            }
            eprintln!("skipping: openssl not found");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "breaker-tls-{}-{}",
            std::process::id(),
            support::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for (name, subject) in [("ca", "/CN=breaker-test-ca"), ("other-ca", "/CN=other-ca")] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                subject,
            ]);
        }
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=breaker")] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Some(Certs { dir })
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn storage(url: &str, ns: &str, tls: RedisTls) -> RedisStorage {
    RedisStorage::builder(url)
        .namespace(ns)
        .tls(tls)
        .connect_timeout(Duration::from_millis(1_000))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn breaker() -> breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder("api")
        .fail_max(2)
        .reset_timeout(Duration::from_secs(60))
}

#[test]
fn a_fleet_shares_a_breaker_over_tls_with_client_certificates() {
    if !support::available() {
        return;
    }
    let Some(certs) = Certs::make() else {
        return;
    };
    let tls_port = support::free_port().to_string();
    let server = Server::start(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &certs.path("server.crt"),
        "--tls-key-file",
        &certs.path("server.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.crt"),
        "--tls-auth-clients",
        "yes",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let ns = support::namespace("tls");
    let good = || {
        RedisTls::new()
            .root_cert_pem(certs.read("ca.crt"))
            .client_cert_pem(certs.read("client.crt"), certs.read("client.key"))
    };
    let (a, sa) = bound(breaker(), &storage(&url, &ns, good()));
    let (b, sb) = bound(breaker(), &storage(&url, &ns, good()));
    assert!(sa.is_shared() && sb.is_shared(), "no TLS connection");
    let _ = a.call(|| Err::<(), _>("boom"));
    let _ = a.call(|| Err::<(), _>("boom"));
    assert_eq!(a.current_state(), State::Open);
    assert!(eventually(Duration::from_secs(3), || b.current_state() == State::Open));
    // The state went over TLS into the server.
    let stored = server.get(sa.key().unwrap()).unwrap();
    assert_eq!(support::fields(&stored)[1], "open");

    // Without the client certificate the server refuses the connection, and
    // a server signed by another CA is not trusted: the breaker runs on its
    // fallback state instead.
    let refused = [
        RedisTls::new().root_cert_pem(certs.read("ca.crt")),
        RedisTls::new()
            .root_cert_pem(certs.read("other-ca.crt"))
            .client_cert_pem(certs.read("client.crt"), certs.read("client.key")),
    ];
    for tls in refused {
        let s = RedisStorage::builder(url.as_str())
            .namespace(ns.as_str())
            .tls(tls.clone())
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let (c, sc) = bound(breaker(), &s);
        assert!(!sc.is_shared(), "{tls:?}");
        assert_eq!(c.current_state(), State::Closed, "{tls:?}");
    }
}

#[test]
fn tls_settings_need_rediss_urls() {
    let err = RedisStorage::builder("redis://127.0.0.1:1/")
        .tls(RedisTls::new())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, RedisStorageError::TlsNeedsRediss { ref node } if node.contains("127.0.0.1")),
        "{err}"
    );
}
