//! Running async client code from synchronous harness code.

use std::future::Future;

/// Runs `fut` to completion on a fresh current-thread tokio runtime in a
/// scoped helper thread. Works whether or not the caller is itself inside a
/// tokio runtime (e.g. a `#[tokio::test]`), where a plain `block_on` would
/// panic.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
