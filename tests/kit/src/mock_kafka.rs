//! librdkafka's mock cluster: an in-process Kafka for fault injection.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

enum Cmd {
    CreateTopic(String, i32),
    BrokerDown(i32),
    BrokerUp(i32),
    RequestErrors(RDKafkaApiKey, Vec<RDKafkaRespErr>),
    TopicError(String, RDKafkaRespErr),
    PartitionLeader(String, i32, i32),
    Rtt(i32, Duration),
}

/// A command and the channel that says it was carried out.
type Request = (Cmd, mpsc::Sender<()>);

/// The mock cluster is not `Send`, so it lives on a thread of its own and takes commands
/// over a channel. Dropping this closes the channel, which ends the thread and the
/// cluster; the drop waits for both.
pub struct MockKafka {
    pub bootstrap: String,
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl MockKafka {
    /// A cluster of `brokers` brokers (ids from 1).
    pub fn start(brokers: i32) -> MockKafka {
        MockKafka::try_start(brokers).expect("mock cluster")
    }

    /// [`MockKafka::start`], with librdkafka's error if the cluster cannot be created.
    pub fn try_start(brokers: i32) -> Result<MockKafka> {
        let (boot_tx, boot_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = boot_tx.send(Err(e));
                        return;
                    }
                };
                let _ = boot_tx.send(Ok(cluster.bootstrap_servers()));
                for (cmd, done) in rx {
                    apply(&cluster, cmd);
                    let _ = done.send(());
                }
            })?;
        let bootstrap = boot_rx.recv()??;
        Ok(MockKafka {
            bootstrap,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn run(&self, cmd: Cmd) {
        let (done_tx, done_rx) = mpsc::channel();
        let tx = self.tx.as_ref().expect("running until dropped");
        tx.send((cmd, done_tx)).unwrap();
        done_rx.recv().unwrap();
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.run(Cmd::CreateTopic(topic.into(), partitions));
    }
    pub fn broker_down(&self, id: i32) {
        self.run(Cmd::BrokerDown(id));
    }
    pub fn broker_up(&self, id: i32) {
        self.run(Cmd::BrokerUp(id));
    }
    pub fn request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        self.run(Cmd::RequestErrors(api, errors.to_vec()));
    }
    pub fn topic_error(&self, topic: &str, error: RDKafkaRespErr) {
        self.run(Cmd::TopicError(topic.into(), error));
    }
    pub fn partition_leader(&self, topic: &str, partition: i32, broker: i32) {
        self.run(Cmd::PartitionLeader(topic.into(), partition, broker));
    }
    pub fn round_trip_time(&self, broker: i32, d: Duration) {
        self.run(Cmd::Rtt(broker, d));
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Carries out one command on the cluster's own thread.
fn apply(cluster: &MockCluster<'static, DefaultProducerContext>, cmd: Cmd) {
    match cmd {
        Cmd::CreateTopic(t, p) => cluster.create_topic(&t, p, 1).unwrap(),
        Cmd::BrokerDown(b) => cluster.broker_down(b).unwrap(),
        Cmd::BrokerUp(b) => cluster.broker_up(b).unwrap(),
        Cmd::RequestErrors(k, e) => cluster.request_errors(k, &e),
        Cmd::TopicError(t, e) => cluster.topic_error(&t, e).unwrap(),
        Cmd::PartitionLeader(t, p, b) => cluster.partition_leader(&t, p, Some(b)).unwrap(),
        Cmd::Rtt(b, d) => cluster.broker_round_trip_time(b, d).unwrap(),
    }
}
