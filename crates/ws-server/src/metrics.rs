//! Prometheus metrics of one server: sockets, handshakes, messages and bytes per class, close
//! codes, slow consumers, rooms and the cluster bus, encoded by `prometheus-client` in the
//! Prometheus text format (0.0.4) at scrape time.
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client and keeps an
//! explicit registry per server (no global recorder: two servers in one process, or two
//! tests, never mix their numbers), and a custom collector reads our own counters at scrape
//! time, so the echo path pays for no label lookup and no shared atomic (see [`meter`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::server::Shared;
use crate::{Endpoint, Registry, RegistryStats, Server};

pub(crate) mod meter;

pub(crate) use meter::Meter;
use meter::{ClassMeter, ClassSnapshot};

/// Rooms reported by name in `ws_room_members` (the largest ones): the label set stays
/// bounded however many rooms exist.
pub(crate) const TOP_ROOMS: usize = 10;

/// Most distinct HTTP statuses counted as handshake failures (others count as status 0).
const MAX_STATUSES: usize = 32;

/// The `Content-Type` of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A server's metrics, and what it serves of them.
pub(crate) struct Metrics {
    data: Arc<Data>,
    prometheus: prometheus_client::registry::Registry,
    /// Serve `/metrics` on the server's own listener (and its `Endpoint`s).
    pub(crate) serve: bool,
    /// The admin page's token, when it is on.
    pub(crate) admin_token: Option<String>,
}

/// What the collector reads at each scrape.
#[derive(Debug)]
struct Data {
    classes: HashMap<Arc<str>, Arc<ClassMeter>>,
    handshake_failures: Mutex<BTreeMap<u16, u64>>,
    registry: Registry,
}

impl std::fmt::Debug for ClassMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassMeter").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for these classes (every registered class and route), reading `registry`.
    pub(crate) fn new(
        classes: impl IntoIterator<Item = Arc<str>>,
        registry: Registry,
        serve: bool,
        admin_token: Option<String>,
    ) -> Metrics {
        let classes = classes.into_iter().map(|name| (name.clone(), ClassMeter::new(name))).collect();
        let data = Arc::new(Data { classes, handshake_failures: Mutex::default(), registry });
        let mut prometheus = prometheus_client::registry::Registry::default();
        prometheus.register_collector(Box::new(data.clone()));
        Metrics { data, prometheus, serve, admin_token }
    }

    /// A socket of `class` opened: its counters.
    pub(crate) fn open(&self, class: &str) -> Option<Meter> {
        self.data.classes.get(class).map(|c| c.open())
    }

    /// An upgrade request was answered `status` instead of 101.
    pub(crate) fn handshake_failed(&self, status: u16) {
        let mut failures = self.data.handshake_failures.lock().unwrap_or_else(|e| e.into_inner());
        let known = failures.len() < MAX_STATUSES || failures.contains_key(&status);
        *failures.entry(if known { status } else { 0 }).or_default() += 1;
    }

    /// Every metric in the Prometheus text format.
    pub(crate) fn text(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.prometheus);
        text
    }

    /// The numbers at this instant (for the admin page).
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.data.snapshot()
    }
}

/// Counts an upgrade request answered `status` (not 101), when metrics are on.
pub(crate) fn handshake_failed(shared: &Shared, status: u16) {
    if let Some(metrics) = &shared.metrics {
        metrics.handshake_failed(status);
    }
}

/// Every number the metrics and the admin page show, at one instant.
pub(crate) struct Snapshot {
    pub(crate) classes: Vec<ClassSnapshot>,
    pub(crate) handshake_failures: Vec<(u16, u64)>,
    pub(crate) stats: RegistryStats,
    pub(crate) rooms: usize,
    /// The largest rooms on this node: (room, members), largest first.
    pub(crate) top_rooms: Vec<(String, usize)>,
    pub(crate) cluster: Option<ClusterSnapshot>,
}

/// The cluster bus as its backend last reported it.
pub(crate) struct ClusterSnapshot {
    pub(crate) bus_up: bool,
    pub(crate) nodes: Vec<(String, u64)>,
    pub(crate) publish_total: u64,
}

impl Data {
    fn snapshot(&self) -> Snapshot {
        let mut classes: Vec<ClassSnapshot> = self.classes.values().map(|c| c.snapshot()).collect();
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        let handshake_failures = {
            let failures = self.handshake_failures.lock().unwrap_or_else(|e| e.into_inner());
            failures.iter().map(|(&s, &n)| (s, n)).collect()
        };
        let (rooms, top_rooms) = {
            let all = self.registry.inner.rooms.read().unwrap_or_else(|e| e.into_inner());
            let mut sizes: Vec<(&str, usize)> = all.iter().map(|(r, m)| (&**r, m.len())).collect();
            sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let top = sizes.iter().take(TOP_ROOMS).map(|&(r, n)| (r.to_string(), n)).collect();
            (all.len(), top)
        };
        let cluster = self.registry.cluster().is_some().then(|| {
            let c = &self.registry.inner.cluster_stats;
            ClusterSnapshot {
                bus_up: c.bus_up.load(Ordering::Relaxed),
                nodes: c.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                publish_total: c.publish_total.load(Ordering::Relaxed),
            }
        });
        Snapshot { classes, handshake_failures, stats: self.registry.stats(), rooms, top_rooms, cluster }
    }
}

/// A family of one number per class.
fn per_class(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    classes: &[ClassSnapshot],
    value: impl Fn(&ClassSnapshot) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for class in classes {
        let labels = [("class", &*class.name)];
        let metric = family.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value(class)).encode(metric)?,
            _ => ConstGauge::new(value(class) as i64).encode(metric)?,
        }
    }
    Ok(())
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, n: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(n).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, n: i64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(n).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn code_label(code: u16) -> String {
    if code == 0 { "other".into() } else { code.to_string() }
}

impl Collector for Data {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = self.snapshot();
        let e = &mut encoder;
        let classes = &s.classes;
        per_class(e, "ws_connections", "Open sockets.", Gauge, classes, |c| c.open)?;
        per_class(e, "ws_connections_opened", "Sockets opened (after the 101).", Counter, classes, |c| {
            c.opened
        })?;
        {
            let help = "Sockets closed, by the close code they ended with.";
            let mut family = e.encode_descriptor("ws_connections_closed", help, None, Counter)?;
            for class in classes {
                for &(code, n) in &class.closed {
                    let labels = [("class", class.name.to_string()), ("code", code_label(code))];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let help = "Upgrade requests answered with another status than 101.";
            let mut family = e.encode_descriptor("ws_handshake_failures", help, None, Counter)?;
            for &(status, n) in &s.handshake_failures {
                let labels = [("status", code_label(status))];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let help = "Messages received (whole messages).";
        per_class(e, "ws_messages_received", help, Counter, classes, |c| c.messages_in)?;
        let help = "Messages sent (written by the socket's server, or pushed by broadcasts).";
        per_class(e, "ws_messages_sent", help, Counter, classes, |c| c.messages_out)?;
        let help = "Payload bytes of the messages received.";
        per_class(e, "ws_bytes_received", help, Counter, classes, |c| c.bytes_in)?;
        let help = "Payload bytes of the messages sent.";
        per_class(e, "ws_bytes_sent", help, Counter, classes, |c| c.bytes_out)?;
        let help = "Sockets closed because pushed frames piled up past max_queued_bytes.";
        counter(e, "ws_slow_consumer_closes", help, s.stats.slow_consumer_closes)?;
        let help = "Pushed frames dropped for a socket already closing as a slow consumer.";
        counter(e, "ws_dropped_frames", help, s.stats.dropped_frames)?;
        gauge(e, "ws_rooms", "Rooms with members on this node.", s.rooms as i64)?;
        {
            let help = "Members on this node of the largest rooms (at most 10 rooms).";
            let mut family = e.encode_descriptor("ws_room_members", help, None, Gauge)?;
            for (room, n) in &s.top_rooms {
                let labels = [("room", room.as_str())];
                ConstGauge::new(*n as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(cluster) = &s.cluster {
            let help = "1 while the cluster's pub/sub connection is up.";
            gauge(e, "ws_cluster_bus_up", help, cluster.bus_up as i64)?;
            gauge(e, "ws_cluster_nodes", "Live nodes in the cluster.", cluster.nodes.len() as i64)?;
            let help = "Frames published to other nodes.";
            counter(e, "ws_cluster_publish", help, cluster.publish_total)?;
            let help = "Seconds a call on a socket of another node took (read, write, close).";
            let metric =
                e.encode_descriptor("ws_cluster_call_duration_seconds", help, None, MetricType::Histogram)?;
            self.registry.inner.cluster_stats.calls.encode(metric)?;
        }
        Ok(())
    }
}

/// What a cluster backend reports about its bus, for the metrics and the admin page: the
/// backend (ws-cluster) calls these as things happen; the server reads them when scraped.
#[derive(Debug)]
pub struct ClusterStats {
    bus_up: AtomicBool,
    publish_total: AtomicU64,
    nodes: Mutex<Vec<(String, u64)>>,
    calls: Histogram,
}

impl Default for ClusterStats {
    fn default() -> Self {
        ClusterStats {
            bus_up: AtomicBool::new(false),
            publish_total: AtomicU64::new(0),
            nodes: Mutex::default(),
            // 0.5 ms to ~16 s.
            calls: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        }
    }
}

impl ClusterStats {
    /// The bus (pub/sub connection) went up or down.
    pub fn set_bus_up(&self, up: bool) {
        self.bus_up.store(up, Ordering::Relaxed);
    }

    /// The live nodes, each with the number of sockets it holds.
    pub fn set_nodes(&self, nodes: Vec<(String, u64)>) {
        *self.nodes.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }

    /// A frame was published to the other nodes.
    pub fn published(&self) {
        self.publish_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A call on a socket of another node finished (answered, failed or timed out).
    pub fn call_finished(&self, took: Duration) {
        self.calls.observe(took.as_secs_f64());
    }

    /// Is the bus up, as last reported?
    pub fn bus_up(&self) -> bool {
        self.bus_up.load(Ordering::Relaxed)
    }

    /// The live nodes with their sockets, as last reported.
    pub fn nodes(&self) -> Vec<(String, u64)> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Registry {
    /// Where a cluster backend reports its bus for the metrics (see [`ClusterStats`]).
    pub fn cluster_stats(&self) -> &ClusterStats {
        &self.inner.cluster_stats
    }
}

impl Endpoint {
    /// The server's metrics in the Prometheus text format (`None` unless
    /// [`ServerBuilder::metrics`](crate::ServerBuilder::metrics) or
    /// [`admin_token`](crate::ServerBuilder::admin_token) turned them on): for an axum
    /// application that serves `/metrics` itself. Its `Content-Type` is
    /// `text/plain; version=0.0.4; charset=utf-8`.
    pub fn metrics_text(&self) -> Option<String> {
        self.shared.metrics.as_ref().map(|m| m.text())
    }
}

impl Server {
    /// The server's metrics in the Prometheus text format (see [`Endpoint::metrics_text`]).
    pub fn metrics_text(&self) -> Option<String> {
        self.shared.metrics.as_ref().map(|m| m.text())
    }
}
