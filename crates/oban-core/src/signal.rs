//! Signals on the `signal` channel: pause, resume and scale a queue, kill a running job.
//! Sent by any node or by Oban Web; this module reads them and builds them.

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
    /// `None` for signals meant for another node, actions this node does not take (`start`,
    /// `stop` of queues it was not configured with), and malformed payloads.
    pub fn parse(payload: &Value, ident: &str) -> Option<Signal> {
        match payload.get("ident").and_then(Value::as_str) {
            None | Some("any") => {}
            Some(target) if target == ident => {}
            Some(_) => return None,
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
            json!({"action":"start","queue":"badges","limit":3}),
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
        ] {
            assert_eq!(
                Signal::parse(&signal.to_payload("any"), ME),
                Some(signal.clone())
            );
        }
    }
}
