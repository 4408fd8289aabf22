//! wss:// over loopback with a CA and certificates made at test time: the echo, the client's
//! trust, certificate reload with a socket left open, and the pending-handshake limit for
//! TLS handshakes that stall.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_server::{Connection, Error, Server, ServerBuilder, WebSocketServer, async_trait};
use ws_session::{ConnectOptions, Transport, WebSocket, connect};

const T: Duration = Duration::from_secs(10);

struct Echo;

#[async_trait]
impl WebSocketServer for Echo {
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        loop {
            let msg = ws.read(0, T).await?;
            ws.write_message(&msg).await?;
        }
    }
}

/// A test CA and what it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for 127.0.0.1 and localhost: (chain PEM, key PEM).
    fn server_cert(&self, cn: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory of its own under the target's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ws-server-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Written beside and renamed in: a reload never sees half a file.
    std::fs::write(dir.join("cert.tmp"), cert).unwrap();
    std::fs::write(dir.join("key.tmp"), key).unwrap();
    std::fs::rename(dir.join("key.tmp"), &k).unwrap();
    std::fs::rename(dir.join("cert.tmp"), &c).unwrap();
    (c, k)
}

async fn start(
    builder: ServerBuilder,
) -> (std::net::SocketAddr, ws_server::Endpoint, ws_server::ShutdownHandle) {
    let server = builder.class("user", "Echo", || Echo).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let (endpoint, stop) = (server.endpoint(), server.shutdown_handle());
    assert!(server.is_tls());
    tokio::spawn(server.run());
    (addr, endpoint, stop)
}

async fn wss(addr: std::net::SocketAddr, ca_pem: &str) -> Result<WebSocket<Transport>, Error> {
    let options = ConnectOptions::default().root_ca_pem(ca_pem.as_bytes())?;
    let url = format!("wss://127.0.0.1:{}/csp/user/Echo.cls", addr.port());
    Ok(tokio::time::timeout(T, connect(&url, &options)).await.expect("connect in time")?.0)
}

async fn echo(ws: &mut WebSocket<Transport>, text: &str) {
    ws.write(text).await.unwrap();
    let back = tokio::time::timeout(T, ws.read(0, T)).await.unwrap().unwrap();
    assert_eq!(back.as_text(), Some(text));
}

#[tokio::test]
async fn wss_echo_with_a_test_ca_and_the_page_over_https() {
    let ca = Ca::new("test CA");
    let dir = scratch("echo");
    let (cert, key) = write_pair(&dir, &ca.server_cert("first"));
    let (addr, _endpoint, stop) =
        start(Server::builder().tls_pem_files(&cert, &key).page("/", "text/html", "<p>hi</p>")).await;

    let mut ws = wss(addr, &ca.pem()).await.unwrap();
    echo(&mut ws, "over TLS").await;
    let big = "x".repeat(200_000); // many TLS records each way
    echo(&mut ws, &big).await;
    ws.end_server().await.unwrap();

    // A client trusting another CA refuses the server's certificate.
    let other = Ca::new("other CA");
    let refused = wss(addr, &other.pem()).await;
    assert!(refused.is_err(), "a certificate from an untrusted CA was accepted");
    // Plain text to the TLS port is no handshake: the connection ends, the server goes on.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(T, plain.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "the page went out in plain text");
    let mut again = wss(addr, &ca.pem()).await.unwrap();
    echo(&mut again, "still serving").await;
    again.end_server().await.unwrap();
    assert_eq!(stop.shutdown().await, 0);
}

#[tokio::test]
async fn certificate_reload_keeps_open_sockets_and_serves_the_new_one() {
    let first_ca = Ca::new("first CA");
    let second_ca = Ca::new("second CA");
    let dir = scratch("reload");
    let (cert, key) = write_pair(&dir, &first_ca.server_cert("first"));
    let builder = Server::builder().tls_pem_files(&cert, &key).tls_reload_interval(Duration::from_millis(50));
    let (addr, endpoint, stop) = start(builder).await;

    let mut open = wss(addr, &first_ca.pem()).await.unwrap();
    echo(&mut open, "before").await;
    assert!(
        wss(addr, &second_ca.pem()).await.is_err(),
        "the second CA's client trusted the first certificate"
    );

    // The files change on disk: the watcher picks them up without a restart.
    write_pair(&dir, &second_ca.server_cert("second"));
    let deadline = tokio::time::Instant::now() + T;
    let mut renewed = loop {
        if let Ok(ws) = wss(addr, &second_ca.pem()).await {
            break ws;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new certificate was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    echo(&mut renewed, "after").await;
    assert!(wss(addr, &first_ca.pem()).await.is_err(), "the old certificate is still served");
    // The socket opened under the old certificate is still there.
    echo(&mut open, "still open").await;

    // A broken file keeps the certificate in use; an explicit reload says why.
    std::fs::write(&key, "not a key").unwrap();
    let err = endpoint.reload_tls().expect_err("a broken key loaded");
    assert!(err.to_string().contains("key.pem"), "{err}");
    let mut third = wss(addr, &second_ca.pem()).await.unwrap();
    echo(&mut third, "kept").await;
    for mut ws in [open, renewed, third] {
        ws.end_server().await.unwrap();
    }
    assert_eq!(stop.shutdown().await, 0);
}

#[tokio::test]
async fn stalled_tls_handshakes_count_against_the_pending_limit_and_time_out() {
    let ca = Ca::new("test CA");
    let dir = scratch("stall");
    let (cert, key) = write_pair(&dir, &ca.server_cert("stall"));
    let builder = Server::builder()
        .tls_pem_files(&cert, &key)
        .max_pending_handshakes(2)
        .request_timeout(Duration::from_millis(600));
    let (addr, _endpoint, stop) = start(builder).await;

    // Two connections that never start TLS hold both places...
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third is closed at once, without a handshake (the accept loop is not blocked).
    let started = tokio::time::Instant::now();
    let refused = wss(addr, &ca.pem()).await;
    assert!(refused.is_err(), "a handshake over the limit went through");
    assert!(started.elapsed() < Duration::from_millis(500), "the refusal waited for the stalled handshakes");
    // The stalled ones are dropped at the request timeout, which frees their places.
    for mut s in stalled {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(T, s.read(&mut buf)).await.expect("dropped in time").unwrap_or(0);
        assert_eq!(n, 0, "a stalled TLS handshake got bytes");
    }
    let mut ws = wss(addr, &ca.pem()).await.unwrap();
    echo(&mut ws, "served again").await;
    ws.end_server().await.unwrap();
    assert_eq!(stop.shutdown().await, 0);
}
