//! Two `demo` processes sharing one Redis serve one chat: a ws-session client on each node
//! exchanges chat lines, the user list is cluster-wide, and a node killed without goodbye
//! drops out of it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ws_cluster::testing::RedisServer;
use ws_session::{ConnectOptions, Transport, WebSocket, connect};

const T: Duration = Duration::from_secs(10);

/// A demo process, killed (SIGKILL, no goodbye) when dropped.
struct Demo {
    child: Child,
    addr: String,
}

impl Demo {
    fn start(redis: &RedisServer) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--addr", "127.0.0.1:0", "--redis", &redis.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("demo listening on http://") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let addr = rx.recv_timeout(T).expect("demo did not start");
        Demo { child, addr }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn join(demo: &Demo, room: &str) -> WebSocket<Transport> {
    let url = format!("ws://{}/csp/user/Chat.Server.cls?room={room}", demo.addr);
    let (mut ws, _) = connect(&url, &ConnectOptions::default()).await.unwrap();
    assert_eq!(next(&mut ws).await["Type"], "Status");
    ws
}

async fn next(ws: &mut WebSocket<Transport>) -> Value {
    serde_json::from_str(ws.read(0, T).await.unwrap().as_text().unwrap()).unwrap()
}

/// Reads until a userlist equal to `want` arrives (bounded).
async fn userlist_until(ws: &mut WebSocket<Transport>, want: &[&str]) {
    for _ in 0..30 {
        let v = next(ws).await;
        if v["Type"] == "userlist" {
            let names: Vec<&str> =
                v["Users"].as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap()).collect();
            if names == want {
                return;
            }
        }
    }
    panic!("userlist never became {want:?}");
}

async fn next_chat(ws: &mut WebSocket<Transport>) -> Value {
    for _ in 0..30 {
        let v = next(ws).await;
        if v["Type"] == "Chat" {
            return v;
        }
    }
    panic!("no chat line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demo_processes_one_chat() {
    let redis = RedisServer::start();
    let node1 = Demo::start(&redis);
    let mut node2 = Demo::start(&redis);

    let mut alice = join(&node1, "lobby").await;
    alice.write(r#"{"User": "Alice"}"#).await.unwrap();
    userlist_until(&mut alice, &["Alice"]).await;
    let mut bob = join(&node2, "lobby").await;
    bob.write(r#"{"User": "Bob"}"#).await.unwrap();
    // The user list is cluster-wide: each node sees both.
    userlist_until(&mut bob, &["Alice", "Bob"]).await;
    userlist_until(&mut alice, &["Alice", "Bob"]).await;

    alice.write(r#"{"Message": "hi from node 1"}"#).await.unwrap();
    let line = next_chat(&mut bob).await;
    assert_eq!(
        (line["Message"].as_str(), line["User"].as_str(), line["Room"].as_str()),
        (Some("hi from node 1"), Some("Alice"), Some("lobby"))
    );
    assert_eq!(next_chat(&mut alice).await["Message"], "hi from node 1");
    bob.write(r#"{"Message": "hello from node 2"}"#).await.unwrap();
    assert_eq!(next_chat(&mut alice).await["User"], "Bob");
    assert_eq!(next_chat(&mut bob).await["Message"], "hello from node 2");

    // Node 2 dies without goodbye: once its liveness key expires, node 1's list loses Bob.
    node2.kill();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(15), "Bob never dropped out");
        let mut probe = join(&node1, "lobby").await;
        let list = loop {
            let v = next(&mut probe).await;
            if v["Type"] == "userlist" {
                break v;
            }
        };
        let names: Vec<&str> =
            list["Users"].as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap()).collect();
        if !names.contains(&"Bob") {
            assert!(names.contains(&"Alice"));
            break;
        }
        probe.end_server().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
