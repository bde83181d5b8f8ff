//! The `--http` server of `badge-forge work`: `/metrics` for Prometheus, `/healthz` for
//! orchestrators, and `/`, a live page for people. The page and the badge previews show
//! attendees' names: with [`Credentials`] every route but `/healthz` asks for them (see
//! the `auth` module).
//!
//! Handlers never wait on the database for the numbers that every scrape or page refresh
//! needs: a sampler counts the jobs waiting per queue every two seconds (one query over the
//! states the work index covers, so it stays cheap however many finished jobs the table holds),
//! and that same query is the database health probe. The counters come from the node's
//! in-process metrics. Only the live page's badge and error lists, and badge previews, query
//! on demand, each with a small `LIMIT`.

mod auth;
mod page;
mod prometheus;

pub use auth::{Credentials, InvalidCredentials};

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use oban_core::Client;
use oban_core::job::JobState;
use oban_core::node::NodeMonitor;
use oban_core::notifier::ListenerHealth;
use sqlx::SqlStr;

use crate::render::Renderer;
use crate::worker::RenderStats;

/// How often the sampler counts queued jobs and probes the database.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a probe may take before the database counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much throughput history the live page shows, in minutes.
pub const HISTORY_MINUTES: usize = 10;

/// What the server shows, shared by every request.
pub struct Dashboard {
    monitor: NodeMonitor,
    node: String,
    /// The node's own client: its pool, prefix and way of sending statements (straight or
    /// through a pooler), for the sampler's probe and the page's queries.
    client: Client,
    stats: Arc<RenderStats>,
    renderer: Arc<Renderer>,
    health_threshold: Duration,
    started: Instant,
    sql: Queries,
    samples: Mutex<Samples>,
}

/// The statements, rendered for the prefix once.
struct Queries {
    latest_badges: SqlStr,
    recent_errors: SqlStr,
    badge_preview: SqlStr,
}

/// Waiting and running jobs of one queue, in [`DEPTH_STATES`] order.
type Depth = [i64; 4];

/// The states the sampler counts: the jobs waiting or running, which the work index covers.
const DEPTH_STATES: [JobState; 4] = [
    JobState::Available,
    JobState::Scheduled,
    JobState::Executing,
    JobState::Retryable,
];

/// What the sampler saw last.
#[derive(Default)]
struct Samples {
    /// Per queue, from the last successful probe.
    depth: BTreeMap<String, Depth>,
    /// Since when probes fail, and the last failure.
    database_down: Option<(Instant, String)>,
    /// Jobs this node had finished per queue (cumulative), every sample of the last
    /// [`HISTORY_MINUTES`] minutes, oldest first.
    finished: VecDeque<(Instant, BTreeMap<String, u64>)>,
}

/// Which components are down, and for how long.
#[derive(Clone, Copy, Debug, Default)]
struct Health {
    database: Option<Duration>,
    listener: Option<Duration>,
}

impl Dashboard {
    /// A dashboard for the node behind `monitor`, querying through `client` (the node's);
    /// `/healthz` fails once the database or the LISTEN connection has been down for longer
    /// than `health_threshold`.
    pub fn new(
        monitor: NodeMonitor,
        node: String,
        client: Client,
        stats: Arc<RenderStats>,
        renderer: Arc<Renderer>,
        health_threshold: Duration,
    ) -> Self {
        let prefix = client.prefix();
        let sql = Queries {
            latest_badges: prefix.render(page::LATEST_BADGES),
            recent_errors: prefix.render(page::RECENT_ERRORS),
            badge_preview: prefix.render(page::BADGE_PREVIEW),
        };
        Self {
            monitor,
            node,
            client,
            stats,
            renderer,
            health_threshold,
            started: Instant::now(),
            sql,
            samples: Mutex::default(),
        }
    }

    fn samples(&self) -> MutexGuard<'_, Samples> {
        // The samples are plain values; one half-written by a panicking thread is still usable.
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn health_of(&self, samples: &Samples) -> Health {
        Health {
            database: samples
                .database_down
                .as_ref()
                .map(|(since, _)| since.elapsed()),
            listener: match self.monitor.listener_health() {
                ListenerHealth::Up | ListenerHealth::Disabled => None,
                ListenerHealth::Down { since } => Some(since.elapsed()),
            },
        }
    }

    /// Samples every [`SAMPLE_INTERVAL`], forever (the server aborts it when it stops).
    async fn sample_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sample().await;
        }
    }

    async fn sample(&self) {
        let probe =
            tokio::time::timeout(PROBE_TIMEOUT, self.client.count_jobs(&DEPTH_STATES)).await;
        let mut finished: BTreeMap<String, u64> = BTreeMap::new();
        for ((queue, _, _), counts) in self.monitor.metrics().snapshot().jobs {
            *finished.entry(queue).or_default() += counts.count;
        }
        let now = Instant::now();
        let mut samples = self.samples();
        match probe {
            Ok(Ok(rows)) => {
                samples.depth.clear();
                for row in rows {
                    if let Some(slot) = DEPTH_STATES.iter().position(|s| *s == row.state) {
                        samples.depth.entry(row.queue).or_default()[slot] = row.count;
                    }
                }
                samples.database_down = None;
            }
            Ok(Err(error)) => mark_down(&mut samples, now, error.to_string()),
            Err(_) => mark_down(
                &mut samples,
                now,
                format!("no answer within {PROBE_TIMEOUT:?}"),
            ),
        }
        samples.finished.push_back((now, finished));
        let keep = Duration::from_secs(60 * (HISTORY_MINUTES as u64 + 1));
        while samples
            .finished
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > keep)
        {
            samples.finished.pop_front();
        }
    }
}

fn mark_down(samples: &mut Samples, now: Instant, error: String) {
    if samples.database_down.is_none() {
        tracing::warn!(%error, "database probe failed");
    }
    let since = samples.database_down.take().map_or(now, |(since, _)| since);
    samples.database_down = Some((since, error));
}

/// Serves the dashboard on `listener` until `shutdown` completes, then finishes the requests
/// in flight. With `credentials`, every route but `/healthz` (a load balancer's probe, which
/// shows no personal data) answers 401 to requests without them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dashboard: Arc<Dashboard>,
    credentials: Option<Credentials>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    dashboard.sample().await;
    let sampler = tokio::spawn(dashboard.clone().sample_forever());
    let mut private = Router::new()
        .route("/", get(live_page))
        .route("/live", get(live_fragment))
        .route("/live.css", get(stylesheet))
        .route("/live.js", get(script))
        .route("/metrics", get(metrics))
        .route("/badges/{badge}/preview.svg", get(preview));
    if let Some(credentials) = credentials {
        private = private.route_layer(middleware::from_fn_with_state(
            Arc::new(credentials),
            auth::require,
        ));
    }
    let app = private
        .route("/healthz", get(healthz))
        .layer(middleware::from_fn(auth::private_headers))
        .with_state(dashboard);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sampler.abort();
    served
}

type Shared = State<Arc<Dashboard>>;

async fn metrics(State(dashboard): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(&dashboard).await,
    )
        .into_response()
}

/// 200 while the database and the LISTEN connection work, or have been down for at most the
/// threshold; 503 after that. The JSON body says which is down and for how long.
async fn healthz(State(dashboard): Shared) -> Response {
    let (health, database_error) = {
        let samples = dashboard.samples();
        let error = samples
            .database_down
            .as_ref()
            .map(|(_, error)| error.clone());
        (dashboard.health_of(&samples), error)
    };
    let threshold = dashboard.health_threshold;
    let failing = |down: Option<Duration>| down.is_some_and(|down| down > threshold);
    let healthy = !failing(health.database) && !failing(health.listener);
    let component = |down: Option<Duration>| {
        serde_json::json!({
            "up": down.is_none(),
            "down_seconds": down.map(|down| (down.as_secs_f64() * 10.0).round() / 10.0),
        })
    };
    let mut database = component(health.database);
    database["error"] = database_error.into();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "failing" },
        "threshold_seconds": threshold.as_secs_f64(),
        "database": database,
        "listener": component(health.listener),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn live_page(State(dashboard): Shared) -> Response {
    html(page::LivePage::build(&dashboard).await)
}

async fn live_fragment(State(dashboard): Shared) -> Response {
    html(page::LiveFragment::build(&dashboard).await)
}

/// The live page's styles: a file of its own, as the Content-Security-Policy allows no inline
/// style.
async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../../templates/live.css"),
    )
        .into_response()
}

/// The live page's refresh script: a file of its own, as the Content-Security-Policy allows
/// no inline script.
async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../../templates/live.js"),
    )
        .into_response()
}

fn html(rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => Html(body).into_response(),
        Err(error) => {
            tracing::error!(%error, "live page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The SVG preview of a badge, addressed by the badge's id from its job's args (which the
/// operator knows from Elixir or the confirmation), never by the sequential job id. An id
/// that cannot be a badge's and one no job has get the same 404.
async fn preview(State(dashboard): Shared, Path(badge): Path<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such badge").into_response();
    if !crate::badge_args::is_badge_id(&badge) {
        return not_found();
    }
    match page::preview(&dashboard, &badge).await {
        Ok(page::Preview::Svg(svg)) => {
            ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
        }
        Ok(page::Preview::NotFound) => not_found(),
        Ok(page::Preview::Invalid(reason)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, reason).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "badge preview failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "preview failed").into_response()
        }
    }
}
