//! Follow mode's `/metrics` (`ingest --follow --metrics-listen ADDR`): an HTTP server beside the
//! ingest, in threads of its own, so that no client can hold the ingest up. Connections are
//! tasks of hyper's HTTP/1 server on a tokio runtime of one thread: each has [`DEADLINE`] to send
//! its request and take the answer, and at most [`MAX_CONNECTIONS`] are open at once (more are
//! closed as soon as they are accepted). The metrics are read by one more thread, from a
//! database connection of its own (the PostgreSQL client runs a runtime of its own, which may not
//! run inside another).

use crate::accounting::metrics;
use crate::accounting::storage::{self, DbSpec, Store};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// Connections served at once; Prometheus opens one per scrape.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// A connection's whole life: its request read, answered and written. A client slower than
/// this (one byte now and then) is cut off.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// A request for the metrics: the status and body come back on the channel.
type Ask = oneshot::Sender<(StatusCode, String)>;

/// Listens on `addr` and serves `/metrics` of the database `spec` from then on, until the
/// process ends. Returns the address bound (`addr` with its port, if it asked for any).
pub fn start(
    addr: SocketAddr,
    spec: DbSpec,
    password: Option<String>,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let (ask, asked) = std::sync::mpsc::sync_channel::<Ask>(MAX_CONNECTIONS);
    std::thread::Builder::new()
        .name("metrics-reader".into())
        .spawn(move || read_metrics(&spec, password.as_deref(), &asked))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, ask).await,
                    Err(e) => eprintln!("sftpd-report: --metrics-listen {bound}: {e}"),
                }
            })
        })?;
    Ok(bound)
}

/// Answers each request with the metrics as they are now; the connection is opened at the first
/// request and again after an error (PostgreSQL restarted, say).
fn read_metrics(spec: &DbSpec, password: Option<&str>, asked: &Receiver<Ask>) {
    let mut store: Option<Box<dyn Store>> = None;
    for reply in asked {
        if reply.is_closed() {
            continue;
        }
        let answer = match store.take() {
            Some(s) => Ok(s),
            None => storage::open_for_reading(spec, password),
        }
        .and_then(|mut s| {
            let text = metrics::render(s.as_mut())?;
            store = Some(s);
            Ok(text)
        });
        let _ = reply.send(match answer {
            Ok(text) => (StatusCode::OK, text),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        });
    }
}

async fn serve(listener: tokio::net::TcpListener, ask: SyncSender<Ask>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: try again in a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let ask = ask.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let ask = ask.clone();
                async move { Ok::<_, Infallible>(answer(&request, &ask).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(DEADLINE, connection).await;
            drop(permit);
        });
    }
}

async fn answer(request: &Request<Incoming>, ask: &SyncSender<Ask>) -> Response<String> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let (reply, answered) = oneshot::channel();
            match ask.try_send(reply) {
                Ok(()) => answered.await.unwrap_or((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the metrics reader stopped\n".to_owned(),
                )),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy\n".to_owned()),
            }
        }
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "try /metrics\n".to_owned()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let text = hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, text);
    response
}
