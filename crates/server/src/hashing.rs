//! Password hashing on a fixed pool of threads.
//!
//! argon2id with OWASP's settings needs 19 MiB per hash. Each pool thread keeps one
//! working buffer and reuses it, so memory stays at threads × 19 MiB however many
//! logins arrive; the rest wait in a bounded queue instead of allocating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tessera_core::CoreError;
use tessera_core::password::{HashParams, Password, PasswordHash, PasswordHasher, Workspace};
use tokio::sync::{mpsc, oneshot};

enum Job {
    Hash(Password, oneshot::Sender<Result<PasswordHash, CoreError>>),
    Verify(PasswordHash, Password, oneshot::Sender<Result<bool, CoreError>>),
}

/// Waiting room for hash jobs; beyond it callers wait to enqueue.
const QUEUE: usize = 1024;

pub struct HashPool {
    jobs: mpsc::Sender<Job>,
    params: HashParams,
    verifications: Arc<AtomicU64>,
}

impl HashPool {
    pub fn new(threads: usize, params: HashParams) -> Result<Self, CoreError> {
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, params))
                .map_err(|e| CoreError::Internal(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(HashPool { jobs, params, verifications: Arc::new(AtomicU64::new(0)) })
    }

    /// How many verifications ran, dummy ones included; tests use it to see that an
    /// unknown user costs a real argon2 evaluation.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn submit<T>(&self, job: Job, rx: oneshot::Receiver<Result<T, CoreError>>) -> Result<T, CoreError> {
        let gone = || CoreError::Internal("hashing pool stopped".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, params: HashParams) {
    let mut workspace = Workspace::default();
    loop {
        // Take the next job, releasing the lock before the (long) hash.
        let job = match rx.lock() {
            Ok(mut guard) => guard.blocking_recv(),
            Err(_) => return,
        };
        match job {
            None => return,
            Some(Job::Hash(password, reply)) => {
                let _ = reply.send(workspace.hash(&params, &password));
            }
            Some(Job::Verify(hash, password, reply)) => {
                let _ = reply.send(workspace.verify(&hash, &password));
            }
        }
    }
}

#[async_trait]
impl PasswordHasher for HashPool {
    async fn hash(&self, password: Password) -> Result<PasswordHash, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Hash(password, tx), rx).await
    }

    async fn verify(&self, hash: PasswordHash, password: Password) -> Result<bool, CoreError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Verify(hash, password, tx), rx).await
    }
}

impl HashPool {
    pub fn params(&self) -> HashParams {
        self.params
    }
}
