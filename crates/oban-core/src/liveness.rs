//! Which producers are alive, as this node hears them.
//!
//! Every node that gossips (Rust and oban-py nodes every second, Elixir nodes with oban_met
//! every 750 ms) sends a check per producer on `gossip` (see [`crate::gossip`]), carrying the
//! producer's UUID, which its claims write as `attempted_by[2]`. Every node keeps when it last
//! heard each producer, leader or not, so that whichever node comes to lead already knows who
//! was alive. The lifeline asks for a [`Census`]:
//!
//! - a producer heard within the silence window is **alive**, however old its jobs are;
//! - one heard before but silent for longer is **silent** (its node died or lost the
//!   database), and its executing jobs are orphans;
//! - one never heard (a runtime that does not gossip, e.g. Elixir without oban_met) is
//!   **unknown** and left to the age rule.
//!
//! Silence counts only while this node could hear: its listener has been up for at least the
//! window without a break. A node that just started or just reconnected has heard nobody yet,
//! and "not heard" then means nothing; until it has listened for the window, every producer it
//! heard before is presumed alive. A producer silent for longer than the age rule's window is
//! forgotten (unknown again): by then the age rule covers every job it claimed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

/// When this node last heard each producer; shared by the router (which feeds it) and the
/// lifeline (which asks it). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Liveness {
    heard: Arc<Mutex<Heard>>,
    /// How long a silent producer is remembered (the age rule's window).
    forget_after: Duration,
}

struct Heard {
    /// When a check of each producer last arrived.
    producers: HashMap<Uuid, Instant>,
    /// Since when the listener has been connected without a break, if it is.
    listening_since: Option<Instant>,
    /// When producers silent for longer than `forget_after` were last dropped.
    pruned_at: Instant,
}

/// What this node can say about the producers it has heard (see the module docs).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Census {
    /// Heard within the silence window, or presumed alive while this node cannot tell.
    pub alive: Vec<Uuid>,
    /// Heard before, then silent for longer than the window while this node was listening.
    pub silent: Vec<Uuid>,
}

impl Liveness {
    /// Remembers silent producers for `forget_after`: at least the silence window, and the
    /// age rule's window if that is longer.
    pub fn new(forget_after: Duration) -> Self {
        Self {
            heard: Arc::new(Mutex::new(Heard {
                producers: HashMap::new(),
                listening_since: None,
                pruned_at: Instant::now(),
            })),
            forget_after,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Heard> {
        // Every update is a single insert or removal: a panic cannot leave it half-done.
        self.heard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the producers of a `gossip` message (`{"checks": [{"uuid": …}, …]}`) as heard
    /// `at`; anything else in it is ignored.
    pub fn heard_checks(&self, message: &Value, at: Instant) {
        let Some(checks) = message["checks"].as_array() else {
            return;
        };
        let mut heard = self.lock();
        for uuid in checks
            .iter()
            .filter_map(|check| check["uuid"].as_str())
            .filter_map(|uuid| Uuid::parse_str(uuid).ok())
        {
            heard.producers.insert(uuid, at);
        }
        // Followers never take a census: drop the long-silent here, so the map stays as
        // small as the set of producers that ran recently.
        if at.saturating_duration_since(heard.pruned_at) > self.forget_after {
            let forget_after = self.forget_after;
            heard
                .producers
                .retain(|_, last| at.saturating_duration_since(*last) <= forget_after);
            heard.pruned_at = at;
        }
    }

    /// The listener (re)connected `at`: silence is counted from then at the earliest.
    pub fn listening(&self, at: Instant) {
        self.lock().listening_since = Some(at);
    }

    /// The census as of `now`. `hearing`: the listener is up now (otherwise nobody can be
    /// judged silent); `silence`: the window.
    pub fn census(&self, now: Instant, silence: Duration, hearing: bool) -> Census {
        let heard = self.lock();
        let judging = hearing
            && heard
                .listening_since
                .is_some_and(|since| now.saturating_duration_since(since) >= silence);
        let mut census = Census::default();
        for (&uuid, &last) in &heard.producers {
            let quiet = now.saturating_duration_since(last);
            if quiet > self.forget_after {
                continue;
            }
            if judging && quiet > silence {
                census.silent.push(uuid);
            } else {
                census.alive.push(uuid);
            }
        }
        census
    }

    /// Forgets `producers` (their orphans were rescued): unknown until heard again.
    pub fn forget(&self, producers: &[Uuid]) {
        let mut heard = self.lock();
        for uuid in producers {
            heard.producers.remove(uuid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SILENCE: Duration = Duration::from_secs(5);

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn checks(uuids: &[Uuid]) -> Value {
        json!({"checks": uuids.iter().map(|uuid| json!({"uuid": uuid.to_string(), "queue": "q"})).collect::<Vec<_>>()})
    }

    fn sorted(mut census: Census) -> Census {
        census.alive.sort();
        census.silent.sort();
        census
    }

    #[test]
    fn heard_is_alive_and_silent_is_dead_once_listening_long_enough() {
        let liveness = Liveness::new(Duration::from_secs(300));
        let start = Instant::now();
        liveness.listening(start);
        liveness.heard_checks(&checks(&[uuid(1), uuid(2)]), start);
        let later = start + Duration::from_secs(6);
        liveness.heard_checks(&checks(&[uuid(1)]), later);
        assert_eq!(
            sorted(liveness.census(later, SILENCE, true)),
            Census {
                alive: vec![uuid(1)],
                silent: vec![uuid(2)]
            }
        );
        liveness.forget(&[uuid(2)]);
        assert_eq!(
            liveness.census(later, SILENCE, true),
            Census {
                alive: vec![uuid(1)],
                silent: vec![]
            },
            "a forgotten producer is unknown"
        );
    }

    #[test]
    fn nobody_is_silent_before_the_listener_has_heard_for_the_window() {
        let liveness = Liveness::new(Duration::from_secs(300));
        let start = Instant::now();
        liveness.heard_checks(&checks(&[uuid(1)]), start);
        // Reconnected 4 s ago, after hearing the producer 10 s ago: too early to tell.
        let now = start + Duration::from_secs(10);
        liveness.listening(now - Duration::from_secs(4));
        let presumed = Census {
            alive: vec![uuid(1)],
            silent: vec![],
        };
        assert_eq!(liveness.census(now, SILENCE, true), presumed);
        // The listener is down: nobody can be judged.
        assert_eq!(
            liveness.census(now + Duration::from_secs(2), SILENCE, false),
            presumed
        );
        assert_eq!(
            liveness.census(now + Duration::from_secs(2), SILENCE, true),
            Census {
                alive: vec![],
                silent: vec![uuid(1)]
            }
        );
    }

    #[test]
    fn long_silent_producers_are_forgotten_and_junk_is_ignored() {
        let forget_after = Duration::from_secs(60);
        let liveness = Liveness::new(forget_after);
        let start = Instant::now();
        liveness.listening(start);
        liveness.heard_checks(&checks(&[uuid(1)]), start);
        liveness.heard_checks(
            &json!({"checks": [{"uuid": "nope"}, {"queue": "q"}, 7]}),
            start,
        );
        liveness.heard_checks(&json!([1, 2]), start);
        let late = start + forget_after + Duration::from_secs(1);
        assert_eq!(liveness.census(late, SILENCE, true), Census::default());
        liveness.heard_checks(&checks(&[uuid(2)]), late);
        assert_eq!(liveness.lock().producers.len(), 1, "pruned while hearing");
    }
}
