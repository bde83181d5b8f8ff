//! Signals on the `signal` channel: pause, resume, scale, start and stop a queue, kill a running
//! job. Sent by any node or by Oban Web; this module reads them and builds them.

use serde_json::{Value, json};

/// Which queues a pause or resume names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueTarget {
    /// Every queue of the receiving node (`"queue": "*"`).
    All,
    /// One queue.
    Named(String),
}

impl QueueTarget {
    /// Whether `queue` is targeted.
    pub fn matches(&self, queue: &str) -> bool {
        match self {
            QueueTarget::All => true,
            QueueTarget::Named(name) => name == queue,
        }
    }
}

/// A signal this node obeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Stop claiming new jobs in the queue(s); running jobs finish.
    Pause(QueueTarget),
    /// Claim again.
    Resume(QueueTarget),
    /// Change a queue's local concurrency limit.
    Scale {
        /// The queue.
        queue: String,
        /// Its new limit.
        limit: usize,
    },
    /// Start running a queue (`Oban.start_queue/2`), unless it runs here already.
    Start {
        /// The queue.
        queue: String,
        /// Its local concurrency limit.
        limit: usize,
        /// Whether it starts paused.
        paused: bool,
    },
    /// Stop running a queue (`Oban.stop_queue/2`): it claims nothing more, its running jobs
    /// get the shutdown grace period to finish, and then it is gone.
    Stop {
        /// The queue.
        queue: String,
    },
    /// Cancel a running job (`pkill`): it is stopped and recorded as `cancelled`.
    Kill {
        /// The job's id.
        job_id: i64,
    },
}

/// Which nodes a signal is for: `"any"`, or one instance's `"<name>.<node>"`.
pub fn ident(name: &str, node: &str) -> String {
    format!("{name}.{node}")
}

impl Signal {
    /// Reads a signal payload addressed to the instance `ident` (`"<name>.<node>"`). Returns
    /// `None` for signals meant for another node, unknown actions and malformed payloads.
    ///
    /// A payload marked `"local_only": true` (Elixir keeps the option in `start_queue`'s
    /// payload) is for the sending node alone, which Elixir names in `ident`: it is taken only
    /// when `ident` names this node, never as `"any"`.
    pub fn parse(payload: &Value, ident: &str) -> Option<Signal> {
        let local_only = payload.get("local_only") == Some(&Value::Bool(true));
        match payload.get("ident").and_then(Value::as_str) {
            None | Some("any") if !local_only => {}
            Some(target) if target == ident => {}
            _ => return None,
        }
        let queue = || {
            payload
                .get("queue")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let target = || {
            queue().map(|queue| {
                if queue == "*" {
                    QueueTarget::All
                } else {
                    QueueTarget::Named(queue)
                }
            })
        };
        match payload.get("action").and_then(Value::as_str)? {
            "pause" => target().map(Signal::Pause),
            "resume" => target().map(Signal::Resume),
            "scale" => Some(Signal::Scale {
                queue: queue()?,
                limit: usize::try_from(payload.get("limit")?.as_u64()?).ok()?,
            }),
            "start" => Some(Signal::Start {
                queue: queue()?,
                limit: usize::try_from(payload.get("limit")?.as_u64()?).ok()?,
                paused: payload
                    .get("paused")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }),
            "stop" => Some(Signal::Stop { queue: queue()? }),
            "pkill" => Some(Signal::Kill {
                job_id: payload.get("job_id")?.as_i64()?,
            }),
            _ => None,
        }
    }

    /// The payload for this signal, addressed to `ident` (`"any"` for every node).
    pub fn to_payload(&self, ident: &str) -> Value {
        let queue = |target: &QueueTarget| match target {
            QueueTarget::All => "*".to_owned(),
            QueueTarget::Named(name) => name.clone(),
        };
        match self {
            Signal::Pause(target) => {
                json!({"action": "pause", "queue": queue(target), "ident": ident})
            }
            Signal::Resume(target) => {
                json!({"action": "resume", "queue": queue(target), "ident": ident})
            }
            Signal::Scale { queue, limit } => {
                json!({"action": "scale", "queue": queue, "limit": limit, "ident": ident})
            }
            // Elixir's start_queue sends `paused` only when it was given.
            Signal::Start {
                queue,
                limit,
                paused,
            } => {
                let mut payload =
                    json!({"action": "start", "queue": queue, "limit": limit, "ident": ident});
                if *paused {
                    payload["paused"] = Value::Bool(true);
                }
                payload
            }
            Signal::Stop { queue } => json!({"action": "stop", "queue": queue, "ident": ident}),
            // Elixir sends pkill without ident: the node running the job acts on it.
            Signal::Kill { job_id } => json!({"action": "pkill", "job_id": job_id}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "Oban.rust-1";

    #[test]
    fn reads_the_payloads_elixir_and_oban_web_send() {
        let cases = [
            (
                json!({"action":"pause","queue":"badges","ident":"any"}),
                Signal::Pause(QueueTarget::Named("badges".into())),
            ),
            (
                json!({"action":"resume","queue":"*","ident":ME}),
                Signal::Resume(QueueTarget::All),
            ),
            (
                json!({"action":"scale","queue":"badges","limit":3,"ident":"any","node":"x"}),
                Signal::Scale {
                    queue: "badges".into(),
                    limit: 3,
                },
            ),
            (
                json!({"action":"pkill","job_id":42}),
                Signal::Kill { job_id: 42 },
            ),
            // As Elixir 2.23.1 sent them (oban-recordings/elixir-notifications.jsonl).
            (
                json!({"action":"stop","ident":"any","queue":"badges"}),
                Signal::Stop {
                    queue: "badges".into(),
                },
            ),
            (
                json!({"action":"start","ident":"any","limit":4,"queue":"badges"}),
                Signal::Start {
                    queue: "badges".into(),
                    limit: 4,
                    paused: false,
                },
            ),
            // oban-py always sends `paused`; Elixir's local_only start names the sender.
            (
                json!({"action":"start","queue":"q","limit":2,"paused":true,"ident":"any"}),
                Signal::Start {
                    queue: "q".into(),
                    limit: 2,
                    paused: true,
                },
            ),
            (
                json!({"action":"start","queue":"q","limit":2,"local_only":true,"ident":ME}),
                Signal::Start {
                    queue: "q".into(),
                    limit: 2,
                    paused: false,
                },
            ),
        ];
        for (payload, signal) in cases {
            assert_eq!(
                Signal::parse(&payload, ME),
                Some(signal.clone()),
                "{payload}"
            );
        }
    }

    #[test]
    fn ignores_other_nodes_and_malformed_signals() {
        for payload in [
            json!({"action":"pause","queue":"badges","ident":"Oban.elixir@host"}),
            json!({"action":"scale","queue":"badges","limit":-1}),
            json!({"action":"pkill","job_id":"42"}),
            json!({"action":"start","queue":"badges"}),
            json!({"action":"start","queue":"badges","limit":-3}),
            json!({"action":"stop"}),
            json!({"action":"start","queue":"q","limit":2,"local_only":true,"ident":"Oban.elixir@host"}),
            json!({"action":"stop","queue":"q","local_only":true,"ident":"any"}),
            json!({"action":"reboot","queue":"badges"}),
            json!({"queue":"badges"}),
        ] {
            assert_eq!(Signal::parse(&payload, ME), None, "{payload}");
        }
    }

    #[test]
    fn round_trips_through_its_payload() {
        for signal in [
            Signal::Pause(QueueTarget::All),
            Signal::Resume(QueueTarget::Named("q".into())),
            Signal::Scale {
                queue: "q".into(),
                limit: 7,
            },
            Signal::Kill { job_id: 9 },
            Signal::Start {
                queue: "q".into(),
                limit: 3,
                paused: true,
            },
            Signal::Start {
                queue: "q".into(),
                limit: 3,
                paused: false,
            },
            Signal::Stop { queue: "q".into() },
        ] {
            assert_eq!(
                Signal::parse(&signal.to_payload("any"), ME),
                Some(signal.clone())
            );
        }
    }
}
