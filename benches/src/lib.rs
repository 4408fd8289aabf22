//! Benchmarks for the WebSocket stack: `cargo bench -p benches` runs the criterion suites in
//! `benches/`. This library is empty; the load generator binary will live beside it.
