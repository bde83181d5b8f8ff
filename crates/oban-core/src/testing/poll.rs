//! Waiting in a test for what another task, process or node does: look, sleep a little, look
//! again, until a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The pause between two looks: short next to any timeout a test sets, long enough that a check
/// which queries the database adds no load worth counting.
const INTERVAL: Duration = Duration::from_millis(50);

/// Runs `check` until it returns `Some`, every 50 ms, and returns that value; `None` once
/// `timeout` has passed without one. It always looks once, and once more at the deadline.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        tokio::time::sleep(left.min(INTERVAL)).await;
    }
}

/// [`poll_until`] for a test that cannot go on without the value: returns it, or panics after
/// `timeout` saying what it was waiting for.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn test(pool: sqlx::PgPool, id: i64) {
/// use oban_core::testing::eventually;
///
/// let state: String = eventually("the job to complete", Duration::from_secs(10), || async {
///     let state: String = sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
///         .bind(id)
///         .fetch_one(&pool)
///         .await
///         .ok()?;
///     (state == "completed").then_some(state)
/// })
/// .await;
/// # }
/// ```
///
/// # Panics
///
/// When `check` has not returned `Some` within `timeout`: "timed out after {timeout} waiting
/// for {what}".
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn looks_until_the_value_is_there_or_the_deadline_has_passed() {
        let looks = Cell::new(0);
        let look = || async {
            looks.set(looks.get() + 1);
            (looks.get() == 3).then_some(looks.get())
        };
        assert_eq!(poll_until(Duration::from_secs(60), look).await, Some(3));

        let started = Instant::now();
        let looks = Cell::new(0);
        let never = || async {
            looks.set(looks.get() + 1);
            None::<()>
        };
        assert_eq!(poll_until(Duration::from_millis(120), never).await, None);
        assert!(started.elapsed() >= Duration::from_millis(120));
        // At the start and at the deadline at least (a loaded machine may skip a pause).
        assert!(looks.get() >= 2, "{} looks", looks.get());

        looks.set(0);
        assert_eq!(poll_until(Duration::ZERO, never).await, None);
        assert_eq!(looks.get(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 100ms waiting for the answer")]
    async fn eventually_says_what_it_waited_for() {
        eventually("the answer", Duration::from_millis(100), || async {
            None::<()>
        })
        .await;
    }
}
