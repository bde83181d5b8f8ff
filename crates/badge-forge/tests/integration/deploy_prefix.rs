//! A non-`public` Oban prefix end to end, beside an instance on `public` in the same database:
//! `badge-forge migrate --prefix`, `work --prefix`, `enqueue --prefix`, and the channels
//! `<prefix>.oban_*`, with no crosstalk between the two instances.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BADGE_FORGE, RustNode, count, database, output_dir, wait_for_count};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

const PREFIX: &str = "badges_eu";

fn badge_forge(url: &str, args: &[&str]) {
    let status = Command::new(BADGE_FORGE)
        .args(args)
        .args(["--database-url", url])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "badge-forge {args:?} failed");
}

/// Per prefix: (completed badges, confirmations, badges run by another node than `node`).
async fn tally(pool: &PgPool, prefix: &str, node: &str) -> (i64, i64, i64) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE queue = 'badges' AND state = 'completed'), \
                count(*) FILTER (WHERE queue = 'printing'), \
                count(*) FILTER (WHERE queue = 'badges' AND attempted_by[1] <> '{node}') \
         FROM \"{prefix}\".oban_jobs"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Adds what `listener` hears to `heard` (per channel, decoded) until it is quiet for `quiet`.
async fn record(
    listener: &mut PgListener,
    heard: &mut HashMap<String, Vec<Value>>,
    quiet: Duration,
) {
    while let Ok(Ok(Some(notification))) = tokio::time::timeout(quiet, listener.try_recv()).await {
        let payload = oban_core::notifier::decode_payload(notification.payload()).unwrap();
        heard
            .entry(notification.channel().to_owned())
            .or_default()
            .push(payload);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefixed_instance_runs_beside_public_without_crosstalk() {
    let (pool, url) = database().await;
    badge_forge(&url, &["migrate", "--prefix", PREFIX]);
    let comment: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT obj_description('\"{PREFIX}\".oban_jobs'::regclass, 'pg_class')"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        comment.as_deref(),
        Some("14"),
        "the prefix holds its own v14 schema"
    );

    // Everything said on either instance's channels, as (channel, payload).
    let mut listener = PgListener::connect(&url).await.unwrap();
    let channels: Vec<String> = ["public", PREFIX]
        .iter()
        .flat_map(|prefix| {
            ["insert", "gossip", "leader"].map(|name| format!("{prefix}.oban_{name}"))
        })
        .collect();
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await
        .unwrap();

    let output = output_dir("prefix");
    let public = RustNode::start(&url, &output, "rust-public", &[]);
    let eu = RustNode::start(&url, &output, "rust-eu", &["--prefix", PREFIX]);
    badge_forge(
        &url,
        &[
            "enqueue", "--prefix", PREFIX, "--count", "300", "--seed", "1",
        ],
    );
    badge_forge(&url, &["enqueue", "--count", "200", "--seed", "2"]);

    let started = Instant::now();
    let mut heard: HashMap<String, Vec<Value>> = HashMap::new();
    loop {
        let (eu_done, _, _) = tally(&pool, PREFIX, "rust-eu").await;
        let (public_done, _, _) = tally(&pool, "public", "rust-public").await;
        if (eu_done, public_done) == (300, 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{eu_done}/300 and {public_done}/200 done"
        );
        record(&mut listener, &mut heard, Duration::from_millis(50)).await;
    }
    let leaders: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT 'public', node FROM public.oban_peers WHERE name = 'Oban.rust' \
         UNION ALL SELECT '{PREFIX}', node FROM \"{PREFIX}\".oban_peers WHERE name = 'Oban.rust' ORDER BY 1"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let (status, _) = public.terminate(Duration::from_secs(15));
    assert!(status.success());
    let (status, _) = eu.terminate(Duration::from_secs(15));
    assert!(status.success());
    // Each leader resigned on its own instance's leader channel as it stopped.
    record(&mut listener, &mut heard, Duration::from_secs(1)).await;

    assert_eq!(
        tally(&pool, PREFIX, "rust-eu").await,
        (300, 300, 0),
        "{PREFIX}: done, confirmed, by the other node"
    );
    assert_eq!(
        tally(&pool, "public", "rust-public").await,
        (200, 200, 0),
        "public: done, confirmed, by the other node"
    );
    assert_eq!(
        leaders,
        vec![
            (PREFIX.to_owned(), "rust-eu".to_owned()),
            ("public".to_owned(), "rust-public".to_owned())
        ],
        "each instance elects its own leader in its own oban_peers"
    );
    // Each instance speaks only on its own channels.
    let gossip_nodes = |prefix: &str| -> Vec<String> {
        let mut nodes: Vec<String> = heard
            .get(&format!("{prefix}.oban_gossip"))
            .into_iter()
            .flatten()
            .flat_map(|message| message["checks"].as_array().cloned().unwrap_or_default())
            .filter_map(|check| check["node"].as_str().map(str::to_owned))
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    };
    assert_eq!(
        gossip_nodes(PREFIX),
        vec!["rust-eu"],
        "gossip on {PREFIX}.oban_gossip: {heard:?}"
    );
    assert_eq!(
        gossip_nodes("public"),
        vec!["rust-public"],
        "gossip on public.oban_gossip"
    );
    for prefix in ["public", PREFIX] {
        assert_eq!(
            heard.get(&format!("{prefix}.oban_leader")),
            Some(&vec![serde_json::json!({"down": "Oban.rust"})]),
            "the leader of {prefix} resigned on {prefix}.oban_leader, and only it"
        );
        let inserts = heard
            .get(&format!("{prefix}.oban_insert"))
            .map_or(0, Vec::len);
        assert!(
            inserts > 0,
            "no insert notification on {prefix}.oban_insert"
        );
    }
    let stray = count(
        &pool,
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'oban%'",
    )
    .await;
    assert_eq!(stray, 0, "nothing was created outside the two prefixes");
    println!(
        "deploy prefix: {PREFIX} (300 badges) beside public (200) in one database, each node on its own \
         tables, leader and channels; no crosstalk"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wake_ups_arrive_on_the_prefixed_insert_channel() {
    let (pool, url) = database().await;
    badge_forge(&url, &["migrate", "--prefix", PREFIX]);
    // Another node leads this instance for the next hour, so this one runs no stager (whose
    // announcements would wake it too) ...
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{PREFIX}\".oban_peers (name, node, started_at, expires_at) \
         VALUES ('Oban.rust', 'elsewhere', timezone('UTC', now()), timezone('UTC', now()) + interval '1 hour')"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let output = output_dir("prefix-wake");
    // ... and its producers poll only every 10 minutes: within the bound below, only the
    // insert's own notification on the prefixed channel can wake them.
    let eu = RustNode::start_polling(&url, &output, "rust-eu-wake", 600.0, &["--prefix", PREFIX]);
    let listening = format!(
        "SELECT least(count(*), 1) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE 'LISTEN%{PREFIX}.oban_insert%'"
    );
    wait_for_count(
        &pool,
        "the prefixed listener",
        &listening,
        1,
        Duration::from_secs(20),
    )
    .await;
    badge_forge(
        &url,
        &[
            "enqueue", "--prefix", PREFIX, "--count", "20", "--seed", "3",
        ],
    );
    let done = format!(
        "SELECT count(*) FROM \"{PREFIX}\".oban_jobs WHERE queue = 'badges' AND state = 'completed'"
    );
    wait_for_count(&pool, "20 badges", &done, 20, Duration::from_secs(30)).await;
    let (status, _) = eu.terminate(Duration::from_secs(15));
    assert!(status.success());
    let untouched = count(&pool, "SELECT count(*) FROM public.oban_jobs").await;
    assert_eq!(untouched, 0, "public got nothing");
}
