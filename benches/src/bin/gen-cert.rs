//! Writes a test CA and a server certificate it signs, for `wss://` on loopback:
//! `gen-cert --out DIR` makes `DIR/ca.pem` (for `wsload --ca`), `DIR/cert.pem` and
//! `DIR/key.pem` (for the servers' `--cert`/`--key` or `--tls-cert`/`--tls-key`), ECDSA P-256,
//! valid for `127.0.0.1`, `::1` and `localhost`. Fresh keys every run; for benchmarks and
//! tests only.

use std::path::PathBuf;

use clap::Parser;

/// Writes ca.pem, cert.pem and key.pem (ECDSA P-256, for 127.0.0.1, ::1 and localhost).
#[derive(Debug, Parser)]
#[command(name = "gen-cert")]
struct Args {
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let certs = benches::test_ca()?;
    std::fs::create_dir_all(&args.out)?;
    for (name, pem) in [("ca.pem", &certs.ca_pem), ("cert.pem", &certs.cert_pem), ("key.pem", &certs.key_pem)]
    {
        std::fs::write(args.out.join(name), pem)?;
    }
    println!("wrote ca.pem, cert.pem and key.pem in {}", args.out.display());
    Ok(())
}
