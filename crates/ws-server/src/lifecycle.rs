//! A live socket's life: `server` (dedicated, or shared beside its driver task), the close,
//! then `on_post_server`, with panics caught.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::Instrument;

use ws_proto::CloseCode;

use crate::class::{PostServer, WebSocketServer};
use crate::mailbox::refuse_all;
use crate::metrics::Meter;
use crate::registry::SocketInfo;
use crate::server::{SHUTTING_DOWN, Shared};
use crate::shared::SharedState;
use crate::slot::Slot;
use crate::upgrade::Accepted;
use crate::{Connection, Registry, SharedHandle, WebSocketId};

/// The live socket: `server`, then the close, then `on_post_server`. (The fields of
/// `accepted` are used in place rather than moved into locals: each local would take room
/// of its own in this task, next to the argument, for the socket's whole life.) Everything
/// the socket's task logs is inside a span carrying its `web_socket_id` and class.
#[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
pub(crate) fn run_socket(mut accepted: Accepted, shared: Slot) -> impl Future<Output = ()> {
    let span = tracing::info_span!(
        "socket",
        web_socket_id = %accepted.conn.web_socket_id(),
        class = %accepted.class,
    );
    async move {
        let info = SocketInfo {
            id: accepted.conn.web_socket_id(),
            class: accepted.class.clone(),
            session_id: accepted.conn.session_id_arc().clone(),
            shared: accepted.shared,
        };
        tracing::info!(shared = info.shared, "connection opened");
        let ending = if accepted.shared {
            // Boxed: a dedicated socket's task does not carry the shared machinery's state.
            Box::pin(run_shared(&mut accepted.instance, info, accepted.conn, &shared)).await
        } else {
            let mailbox = accepted.conn.mailbox().cloned().expect("a dedicated socket has a mailbox");
            Box::pin(shared.registry.insert(info, mailbox, None)).await;
            close_if_stopping(&shared, &accepted.conn.web_socket_id());
            let outcome = catch_unwind(accepted.instance.server(&mut accepted.conn)).await;
            // The ending runs in its own boxed future: it does not enlarge the idle task.
            let conn = &mut accepted.conn;
            Box::pin(async move {
                if !conn.is_closed() {
                    let _ = conn.end_server().await;
                }
                conn.registry().remove(&conn.web_socket_id()).await;
                let close = conn.close_info().unwrap_or((CloseCode::ABNORMAL, String::new()));
                if let Some(mailbox) = conn.mailbox() {
                    refuse_all(mailbox.close(), close.0, &close.1);
                }
                let (id, session_id, meter) =
                    (conn.web_socket_id(), conn.session_id_arc().clone(), conn.take_meter());
                Ending { outcome, close, id, session_id, meter }
            })
            .await
        };
        Box::pin(finish(accepted.instance, ending, accepted.shared, shared.registry.clone())).await;
    }
    .instrument(span)
}

/// A shared socket's life: its driver task and `server` side by side.
async fn run_shared(
    instance: &mut Box<dyn WebSocketServer>,
    info: SocketInfo,
    mut dedicated: Connection,
    shared: &Shared,
) -> Ending {
    let meter = dedicated.take_meter();
    let (id, session_id, registry, ws, mailbox) = dedicated.into_dedicated_parts().expect("made dedicated");
    let state = Arc::new(SharedState::default());
    Box::pin(registry.insert(info, mailbox.clone(), Some(state.clone()))).await;
    close_if_stopping(shared, &id);
    let handle = SharedHandle::local(id, mailbox.clone(), state.clone());
    let mut conn = Connection::shared(id, session_id.clone(), registry.clone(), handle);
    let timeout = shared.config.session_timeout;
    let driver =
        crate::shared::run(*ws, mailbox, state.clone(), timeout, registry.clone(), id, meter.as_ref());
    let (_, outcome) = tokio::join!(driver, catch_unwind(instance.server(&mut conn)));
    Box::pin(registry.remove(&id)).await;
    let close = state.ended().unwrap_or((CloseCode::ABNORMAL, String::new()));
    Ending { outcome, close, id, session_id, meter }
}

/// A socket registered after shutdown's `close_all` looked is closed here (shutdown cancels
/// before it closes, so one of the two sees the other).
fn close_if_stopping(shared: &Shared, id: &WebSocketId) {
    if shared.stop.is_cancelled() {
        shared.registry.close(id, CloseCode::GOING_AWAY, SHUTTING_DOWN);
    }
}

/// How a socket's `server` ended, for `on_post_server`.
struct Ending {
    outcome: Result<Result<(), ws_session::Error>, Box<dyn Any + Send>>,
    close: (CloseCode, String),
    id: WebSocketId,
    session_id: Arc<str>,
    meter: Option<Meter>,
}

async fn finish(mut instance: Box<dyn WebSocketServer>, ending: Ending, is_shared: bool, registry: Registry) {
    let Ending { outcome, close, id, session_id, meter } = ending;
    if let Some(meter) = meter {
        meter.close(close.0);
    }
    let (error, panic) = match outcome {
        Ok(Ok(())) => (None, None),
        Ok(Err(e)) if e.is_normal_close() => (None, None),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "server returned an error");
            (Some(Arc::new(e)), None)
        }
        Err(panic) => {
            let message = panic_message(&panic);
            tracing::error!(panic = %message, "server panicked");
            (None, Some(message))
        }
    };
    tracing::info!(code = %close.0, reason = %close.1, "connection closed");
    let post = PostServer { web_socket_id: id, session_id, shared: is_shared, close, error, panic, registry };
    if let Err(panic) = catch_unwind(instance.on_post_server(&post)).await {
        tracing::error!(panic = panic_message(&panic), "on_post_server panicked");
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs a future, turning a panic inside it into an `Err` with the panic's payload.
pub(crate) fn catch_unwind<F: Future>(
    future: F,
) -> impl Future<Output = Result<F::Output, Box<dyn Any + Send>>> {
    // The class instance is not used again after a panic but for `on_post_server`, which an
    // application writes knowing `server` may have panicked.
    AssertUnwindSafe(future).catch_unwind()
}
