//! Many small kernel steps at once, on a few scoped threads: namespaces made,
//! node namespaces configured, node processes started. Each of these moves
//! its thread into a namespace, so it runs on a thread of the pool's own,
//! never on an async worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// As many threads as the machine has cores, between 1 and 4: for steps that
/// use the CPU (the kernel's own work on a namespace).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Runs `step(i)` for every `i` in `0..count` on up to `threads` threads,
/// handing out indices in order, and returns the results by index. Once a
/// step fails no new one starts; the steps never started are `None`. A step
/// that panics panics the caller.
pub fn each<T: Send, E: Send>(
    count: usize,
    threads: usize,
    step: impl Fn(usize) -> Result<T, E> + Sync,
) -> Vec<Option<Result<T, E>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Vec<(usize, Result<T, E>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, count.max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let result = step(i);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        mine.push((i, result));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut results: Vec<Option<Result<T, E>>> = (0..count).map(|_| None).collect();
    for (i, result) in done {
        results[i] = Some(result);
    }
    results
}

/// [`each`], all or nothing: every result in order, or the first error by
/// index (`not_run` stands for a step never started, which only an earlier
/// failure causes).
pub fn all<T: Send, E: Send>(
    count: usize,
    threads: usize,
    step: impl Fn(usize) -> Result<T, E> + Sync,
    not_run: impl Fn(usize) -> E,
) -> Result<Vec<T>, E> {
    let mut results = each(count, threads, step);
    // The first failure by index, before any step it kept from running.
    if let Some(first) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Err(e)) = results.swap_remove(first) {
            return Err(e);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| Err(not_run(i))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_by_index_from_several_threads() {
        let got = all(100, 4, |i| Ok::<_, ()>(i * 2), |_| ()).unwrap();
        assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_failure_stops_new_steps_and_is_the_error() {
        let started = AtomicUsize::new(0);
        let got = all(
            1000,
            1,
            |i| {
                started.fetch_add(1, Ordering::Relaxed);
                if i == 3 {
                    Err(format!("step {i}"))
                } else {
                    Ok(i)
                }
            },
            |i| format!("not run {i}"),
        );
        assert_eq!(got, Err("step 3".to_owned()));
        assert_eq!(started.load(Ordering::Relaxed), 4, "none after the failure");
        let each = each(10, 1, |i| if i == 3 { Err(()) } else { Ok(i) });
        assert!(each[..3].iter().all(|r| matches!(r, Some(Ok(_)))));
        assert!(each[4..].iter().all(Option::is_none));
    }
}
