//! What the process tests share: a demo binary started on 127.0.0.1:0 and read for its URL,
//! signals by `kill(1)` (no `unsafe` here), a one-shot HTTP/1.1 GET over any stream, and a
//! test CA made with rcgen.

#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The bound of every single wait in these tests.
pub(crate) const T: Duration = Duration::from_secs(10);

/// A server process, killed (SIGKILL) when dropped unless it already exited.
pub(crate) struct Process {
    child: Child,
    /// What follows `LABEL listening on SCHEME://` in its first line: `127.0.0.1:PORT`.
    pub(crate) addr: String,
}

impl Process {
    /// Starts `binary args..` and waits (bounded) for `<prefix>127.0.0.1:PORT/` on stdout,
    /// e.g. prefix `demo listening on https://`.
    pub(crate) fn start(binary: &str, args: &[&str], prefix: &str) -> Process {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = prefix.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(&wanted) {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(T) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("{binary} {args:?} did not print '{prefix}127.0.0.1:PORT/' within {T:?}");
            }
        };
        Process { child, addr }
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Sends SIGTERM (through kill(1)).
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}: {status}", self.child.id());
    }

    /// Waits (bounded by `limit`) for the process to exit.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "still running {limit:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP/1.1 response: status code, headers (lower-case names) and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `GET path` on `stream` with `Connection: close`; reads the head and a `Content-Length`
/// body (or to EOF without one). Bounded by [`T`].
pub(crate) async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> Response {
    tokio::time::timeout(T, get_unbounded(stream, host, path)).await.expect("HTTP response in time")
}

async fn get_unbounded<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> Response {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).expect("UTF-8 response head").to_string();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap();
            let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect(status_line);
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let length =
                headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
            let body_start = end + 4;
            if let Some(length) = length {
                while buf.len() < body_start + length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "EOF inside a {length}-byte body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Response { status, headers, body: buf[body_start..body_start + length].to_vec() };
            }
            assert!(
                headers.iter().all(|(n, _)| n != "transfer-encoding"),
                "chunked responses are not read here: {head}"
            );
            // No length: the body runs to EOF (an EOF without TLS close_notify also ends it).
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Response { status, headers, body: buf[body_start..].to_vec() };
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "EOF before the end of the response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A test CA and what it signs.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// The CA's certificate, PEM.
    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes a certificate for 127.0.0.1 and localhost into `dir`: (cert.pem, key.pem).
    pub(crate) fn server_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A fresh directory of its own under the temp dir.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("examples-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
