//! Waiting for a condition that has no event to wait on (a row's state in
//! another service, say): check it, then again at a short interval, until
//! it holds or the deadline passes. The deadline is the test's statement of
//! how long is too long; the interval only bounds how late we notice.

use std::future::Future;
use std::time::Duration;

/// Calls `check` until it returns `Some`, every 25 ms, for at most
/// `deadline`; the error says what was awaited.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    let mut ticks = tokio::time::interval(Duration::from_millis(25));
    loop {
        ticks.tick().await;
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_or_times_out() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done.then_some(42) }
        })
        .await
        .unwrap();
        assert_eq!(value, 42);
        let err = eventually("never", Duration::from_millis(60), || async { None::<()> })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never"));
    }
}
