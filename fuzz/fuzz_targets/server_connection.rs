//! A server-role `Connection` fed arbitrary bytes in chunks: see `ws_proto_fuzz::drive`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::Role;

fuzz_target!(|data: &[u8]| ws_proto_fuzz::drive(Role::Server, data));
