//! Helpers shared by the integration tests of `ampwarden-actors`.

use std::future::Future;
use std::time::Duration;

/// How long a condition may take before the test fails: generous, because the machine
/// running the tests may be busy. Nothing is asserted about how long it actually took.
const PATIENCE: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(10);

/// Polls `condition` until it holds; panics naming `what` if it never does.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let steps = PATIENCE.as_millis() / STEP.as_millis();
    for _ in 0..steps {
        if condition().await {
            return;
        }
        tokio::time::sleep(STEP).await;
    }
    panic!("gave up waiting until {what}");
}
