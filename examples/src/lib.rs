//! Runnable example programs for this workspace; see `src/bin/`. The library part holds the
//! small pieces the binaries share.

/// The value following `--name` in the command line, if given.
pub fn arg_value(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == name {
            return args.next();
        }
        if let Some(v) = arg.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}
