//! Runs the Autobahn|Testsuite's cases against its `fuzzingserver`, echoing every message the
//! way the suite expects: `autobahn-client --url ws://127.0.0.1:9001 [--agent NAME]`.
//! It offers permessage-deflate (with `client_no_context_takeover`, which the suite's cases
//! 13.2 and 13.5-13.7 require of an offer) unless `--no-deflate`.

use clap::Parser;
use ws_session::{ConnectOptions, Error, connect};

/// The Autobahn|Testsuite's cases against its fuzzingserver, with ws-session as the client.
#[derive(Debug, Parser)]
#[command(name = "autobahn-client", version)]
struct Args {
    /// The fuzzingserver's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// The agent name the reports are filed under.
    #[arg(long, default_value = "ws-session")]
    agent: String,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    no_deflate: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let Args { url, agent, no_deflate } = Args::parse();
    let deflate = (!no_deflate).then(|| ws_proto::DeflateConfig::default().client_no_context_takeover(true));
    let options = ConnectOptions::default().config(ws_session::Config::default().deflate(deflate));

    let (mut ws, _) = connect(&format!("{url}/getCaseCount"), &options).await?;
    let count: u32 = ws
        .read_message()
        .await?
        .as_text()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| Error::InvalidInput("case count is not a number".into()))?;
    let _ = ws.end_server().await;
    println!("{count} cases");

    for case in 1..=count {
        match connect(&format!("{url}/runCase?case={case}&agent={agent}"), &options).await {
            Ok((mut ws, _)) => {
                while let Ok(msg) = ws.read_message().await {
                    if ws.write_message(&msg).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    let (mut ws, _) = connect(&format!("{url}/updateReports?agent={agent}"), &options).await?;
    while ws.read_message().await.is_ok() {}
    println!("reports updated for agent {agent}");
    Ok(())
}
