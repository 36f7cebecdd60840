//! Bounded password hashing. Every argon2id hash or verification needs
//! 19 MiB and tens of milliseconds of one core, so running one per request
//! lets a burst of unauthenticated sign-ins take all memory and CPU. Here a
//! fixed set of threads does the work, a short queue holds what waits, and
//! anything beyond is refused at once ([`PasswordBusy`]) so the caller can
//! answer 429. Dedicated threads also keep glibc from growing one malloc
//! arena per short-lived blocking thread, so memory returns to its idle
//! level after a burst.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The work queue is full: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordBusy;

/// Seconds a refused caller is told to wait.
pub const BUSY_RETRY_AFTER_SECONDS: i64 = 1;

#[derive(Clone)]
pub struct PasswordWork {
    jobs: SyncSender<Job>,
    workers: usize,
    queue: usize,
}

impl std::fmt::Debug for PasswordWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordWork").field("workers", &self.workers).field("queue", &self.queue).finish()
    }
}

impl PasswordWork {
    /// `workers` threads (at least one) and room for `queue` waiting jobs.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("password-{i}")).spawn(move || loop {
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password worker thread");
            }
        }
        PasswordWork { jobs, workers, queue }
    }

    /// As many workers as cores (at most four), and a queue twice as long.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
        Self::new(cores, cores * 4)
    }

    /// No worker at all: every job is refused as busy (tests of the busy path).
    #[cfg(test)]
    pub(crate) fn stopped() -> Self {
        let (jobs, _) = sync_channel::<Job>(0);
        PasswordWork { jobs, workers: 0, queue: 0 }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue_len(&self) -> usize {
        self.queue
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordBusy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PasswordBusy),
            Err(TrySendError::Disconnected(_)) => return Err(PasswordBusy),
        }
        rx.await.map_err(|_| PasswordBusy)
    }

    /// Verifies `password` against `stored`, or against a dummy hash when
    /// there is no account, so both cost the same.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, PasswordBusy> {
        self.run(move || match stored {
            Some(hash) => crate::secret::verify_password(&password, &hash),
            None => {
                crate::secret::verify_password(&password, crate::secret::dummy_password_hash());
                false
            }
        })
        .await
    }

    pub async fn hash(&self, password: String) -> Result<Result<String, crate::CoreError>, PasswordBusy> {
        self.run(move || crate::secret::hash_password(&password)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_workers_and_queue_is_refused_at_once() {
        let work = PasswordWork::new(1, 2);
        let hash = crate::secret::hash_password("correct horse battery").unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let work = work.clone();
                let hash = hash.clone();
                tokio::spawn(async move { work.verify("wrong".into(), Some(hash)).await })
            })
            .collect();
        let mut done = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => {
                    assert!(!ok);
                    done += 1
                }
                Err(PasswordBusy) => busy += 1,
            }
        }
        assert!((1..=3 + 1).contains(&done), "at most one running and two queued at a time: {done}");
        assert!(busy >= 16, "{busy}");
        assert_eq!(work.verify("correct horse battery".into(), Some(hash)).await, Ok(true));
    }
}
