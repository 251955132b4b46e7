//! The demo's embedded Kafka: librdkafka's mock cluster, one broker, for as long as the
//! demo runs. The cluster is not `Send`, so it lives on a thread of its own until this
//! is dropped.

use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct EmbeddedKafka {
    pub bootstrap: String,
    /// Dropped to end the cluster's thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    pub fn start() -> Result<EmbeddedKafka> {
        let (boot_tx, boot_rx) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("demo-kafka".into())
            .spawn(move || {
                match MockCluster::<DefaultProducerContext>::new(1) {
                    Ok(cluster) => {
                        let _ = boot_tx.send(Ok(cluster.bootstrap_servers()));
                        // Until the sender is dropped.
                        let _ = stopped.recv();
                    }
                    Err(e) => {
                        let _ = boot_tx.send(Err(e));
                    }
                }
            })?;
        let bootstrap = boot_rx
            .recv()?
            .context("librdkafka's mock cluster did not start")?;
        Ok(EmbeddedKafka {
            bootstrap,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
