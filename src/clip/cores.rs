//! [`Cores`]: one single-threaded rayon pool per CPU core, to run a model's work on every core
//! without candle's own threading.
//!
//! candle parallelises inside each operation: its matmuls split across the rayon pool they are
//! called from, its element-wise ops of 64k+ elements run on a spinning pool of its own, the rest
//! (copies, LayerNorm, softmax) on one thread, and small matmuls barely split. On 2 cores a single
//! ViT-B/32 image was slower than on one core. mmdb instead hands each core a whole piece of work,
//! run single-threaded on that core's pool: whole rows of a large batch, or the heads and MLP
//! units of each layer of a small one (tensor parallelism, `transformer::Exec::Cores`); see
//! `ClipEmbedder::on_cores`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rayon::ThreadPool;

/// Makes gemm, candle's CPU matmul, run every matmul on the calling thread: mmdb gives each core its
/// own work, so gemm's own threading only costs. Inside a single-threaded pool candle still asks
/// gemm for its rayon mode (it counts the machine's cores, not the pool's), whose blocking made
/// a single image markedly slower (measurements: docs/perf.md#clip-cpu-threading).
///
/// gemm's threshold is global: other candle CPU matmuls in the same process stop threading too.
pub(crate) fn gemm_on_calling_thread() {
    gemm::set_threading_threshold(usize::MAX);
}

/// Longest core 0 spins for the other cores in [`Cores::each`] before it blocks.
const MAX_SPIN: Duration = Duration::from_millis(2);

/// One single-threaded rayon pool per core.
#[derive(Debug)]
pub(crate) struct Cores {
    pools: Vec<ThreadPool>,
}

/// A task of [`Cores::each`] panicked.
#[derive(Debug)]
pub(crate) struct Panicked;

impl Cores {
    /// `n` pools, or `None` when fewer than two could be started (one core: nothing to spread).
    pub fn new(n: usize) -> Option<Cores> {
        let pools: Vec<ThreadPool> = (0..n)
            .map_while(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("mmdb-clip-core-{i}"))
                    .build()
                    .ok()
            })
            .collect();
        (pools.len() >= 2).then_some(Cores { pools })
    }

    /// How many cores (pools).
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Runs `op` on the first core's thread (where [`Cores::each`] runs task 0 in place, with no
    /// hand-off), blocking the caller.
    pub fn install<T: Send>(&self, op: impl FnOnce() -> T + Send) -> T {
        self.pools[0].install(op)
    }

    /// Runs `task(0..n)` across the cores and returns the results in order: task `i` on core
    /// `i % len`, the tasks of one core one after another, all cores at once. Blocks until every
    /// task is done; a panicking task makes the whole call `Err(Panicked)` (after the others end).
    pub fn each<T: Send>(
        &self,
        n: usize,
        task: &(dyn Fn(usize) -> T + Sync),
    ) -> Result<Vec<T>, Panicked> {
        let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let used = n.min(self.pools.len());
        // Cores still running. Core 0, done with its own tasks, spins on this before it joins
        // the others: waiting in rayon's join puts the thread to sleep after a short spin, and
        // waking it costs more than the wait is worth, twice per CLIP layer (measurements:
        // docs/perf.md#clip-cpu-threading).
        let running = AtomicUsize::new(used.max(1) - 1);
        let run_core = |core: usize| {
            for i in (core..n).step_by(used.max(1)) {
                *slots[i].lock() = catch_unwind(AssertUnwindSafe(|| task(i))).ok();
            }
            if core == 0 {
                let start = Instant::now();
                while running.load(Ordering::Acquire) > 0 && start.elapsed() < MAX_SPIN {
                    std::hint::spin_loop();
                }
            } else {
                running.fetch_sub(1, Ordering::Release);
            }
        };
        self.install(|| spread(&self.pools[1..used.max(1)], 1, &run_core));
        slots
            .into_iter()
            .map(|s| s.into_inner().ok_or(Panicked))
            .collect()
    }
}

/// Runs `run_core(core)` for every core from `core` on: each of `pools` gets one spawned job (its
/// core number), and core 0's share runs in place on the calling thread (core 0's) inside the
/// innermost scope, so all run at once; every scope waits for its job before returning.
fn spread(pools: &[ThreadPool], core: usize, run_core: &(dyn Fn(usize) + Sync)) {
    match pools.split_first() {
        Some((pool, rest)) => pool.in_place_scope(|s| {
            s.spawn(move |_| run_core(core));
            spread(rest, core + 1, run_core);
        }),
        None => run_core(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runs_every_task_once_in_order_on_its_core() {
        let cores = Cores::new(2).unwrap();
        let out = cores
            .each(5, &|i| (i, std::thread::current().name().map(String::from)))
            .unwrap();
        let ids: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        for (i, name) in out {
            assert_eq!(name.as_deref(), Some(&*format!("mmdb-clip-core-{}", i % 2)));
        }
    }

    #[test]
    fn nested_each_inside_install_runs_inline_on_core_zero() {
        let cores = Cores::new(2).unwrap();
        let out = cores.install(|| cores.each(2, &|i| i * 10)).unwrap();
        assert_eq!(out, vec![0, 10]);
    }

    #[test]
    fn a_panicking_task_is_an_error_not_a_crash() {
        let cores = Cores::new(2).unwrap();
        let r = cores.each(3, &|i| {
            if i == 1 {
                panic!("task 1 fails");
            }
            i
        });
        assert!(r.is_err());
        // The pools still work afterwards.
        assert_eq!(cores.each(2, &|i| i).unwrap(), vec![0, 1]);
    }
}
