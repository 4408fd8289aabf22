//! `demo --tls-cert --tls-key` with a CA made at test time: the chat page over https (ALPN
//! http/1.1), the echo class over wss, a client trusting another CA refused, and SIGTERM
//! still closing a wss socket with 1001.

mod common;

use std::time::Duration;

use common::{Ca, Process, T, get, scratch};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use ws_session::rustls::RootCertStore;
use ws_session::rustls::pki_types::pem::PemObject;
use ws_session::rustls::pki_types::{CertificateDer, ServerName};
use ws_session::{CloseCode, ConnectOptions, Error, Transport, WebSocket, connect};

const ECHO: &str = "/csp/user/MyApp.MyWebSocketServer.cls";

fn tls_demo(ca: &Ca, name: &str) -> Process {
    let dir = scratch(name);
    let (cert, key) = ca.server_files(&dir);
    Process::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--addr", "127.0.0.1:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        "demo listening on https://",
    )
}

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    TlsConnector::from(ws_session::tls_client_config(roots))
}

async fn wss(demo: &Process, ca_pem: &str) -> Result<WebSocket<Transport>, Error> {
    let options = ConnectOptions::default().root_ca_pem(ca_pem.as_bytes())?;
    let url = format!("wss://127.0.0.1:{}{ECHO}", demo.port());
    Ok(tokio::time::timeout(T, connect(&url, &options)).await.expect("wss handshake in time")?.0)
}

#[tokio::test]
async fn page_over_https_echo_over_wss_and_another_ca_refused() {
    let ca = Ca::new("examples test CA");
    let demo = tls_demo(&ca, "tls-page");

    // GET / over https, trusting only the test CA.
    let tcp = TcpStream::connect(&demo.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio::time::timeout(T, connector(&ca.pem()).connect(name.clone(), tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake with the test CA");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN");
    let page = get(&mut tls, &demo.addr, "/").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.header("content-type").unwrap_or("").starts_with("text/html"), "{:?}", page.headers);
    assert_eq!(String::from_utf8(page.body).unwrap(), examples::chat::PAGE);

    // The echo class over wss: text, binary, and a message over one TLS record (16 KiB) but
    // under the echo class's read length (32656), so it comes back whole.
    let mut ws = wss(&demo, &ca.pem()).await.unwrap();
    ws.write("héllo over wss").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("héllo over wss"));
    ws.write_binary(&[0, 1, 2, 255]).await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_bytes(), [0, 1, 2, 255]);
    let big = "wss ".repeat(7_500);
    ws.write(&big).await.unwrap();
    let back = ws.read(0, T).await.unwrap();
    assert!(back.as_text() == Some(big.as_str()), "30000 bytes sent, {} came back", back.as_bytes().len());
    ws.end_server().await.unwrap();

    // Clients trusting another CA refuse the server's certificate: wss and https alike.
    let other = Ca::new("another CA");
    match wss(&demo, &other.pem()).await {
        Err(e) => assert!(e.to_string().to_lowercase().contains("certificate"), "refused, but why: {e}"),
        Ok(_) => panic!("wss accepted a certificate from an untrusted CA"),
    }
    let tcp = TcpStream::connect(&demo.addr).await.unwrap();
    let refused = tokio::time::timeout(T, connector(&other.pem()).connect(name, tcp)).await.expect("in time");
    assert!(refused.is_err(), "https accepted a certificate from an untrusted CA");
    // Plain ws:// to the TLS port gets no WebSocket.
    let plain =
        tokio::time::timeout(T, connect(&format!("ws://{}{ECHO}", demo.addr), &ConnectOptions::default()))
            .await
            .expect("refused in time");
    assert!(plain.is_err(), "plain ws:// was upgraded on the TLS port");

    // The server is still fine after the refusals.
    let mut ws = wss(&demo, &ca.pem()).await.unwrap();
    ws.write("still here").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("still here"));
}

#[tokio::test]
async fn sigterm_closes_a_wss_socket_with_1001() {
    let ca = Ca::new("examples test CA");
    let mut demo = tls_demo(&ca, "tls-sigterm");
    let mut ws = wss(&demo, &ca.pem()).await.unwrap();
    ws.write("before").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("before"));
    demo.terminate();
    match ws.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::GOING_AWAY),
        other => panic!("after SIGTERM: {other:?}"),
    }
    let status = demo.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "demo exited with {status}");
}
