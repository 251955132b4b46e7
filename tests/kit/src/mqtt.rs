//! MQTT clients (rumqttc, v3.1.1 and v5) whose event loops run in the background and
//! report acknowledgements.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// An MQTT 3.1.1 client (rumqttc) whose event loop runs in the background and reports
/// acknowledgements.
pub struct V3Client {
    pub client: rumqttc::AsyncClient,
    acks: mpsc::UnboundedReceiver<u16>,
    pub disconnects: Arc<AtomicU32>,
}

impl V3Client {
    pub async fn connect(addr: SocketAddr, id: &str) -> V3Client {
        V3Client::connect_with(addr, id, None, true).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        user: Option<(&str, &str)>,
        clean: bool,
    ) -> V3Client {
        let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean);
        if let Some((u, p)) = user {
            opts.set_credentials(u, p);
        }
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
        let (tx, acks) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = oneshot::channel();
        let disconnects = Arc::new(AtomicU32::new(0));
        let d = disconnects.clone();
        tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(a))) => {
                        let _ = tx.send(a.pkid);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubRec(a))) => {
                        let _ = tx.send(a.pkid);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        d.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx)
            .await
            .expect("connack")
            .unwrap();
        V3Client {
            client,
            acks,
            disconnects,
        }
    }

    pub async fn publish(&self, topic: &str, qos: u8, payload: impl Into<Vec<u8>>) {
        let qos = rumqttc::qos(qos).unwrap();
        self.client
            .publish(topic, qos, false, payload.into())
            .await
            .unwrap();
    }

    /// Waits for the next PUBACK/PUBREC (its packet id), if one comes within `timeout`.
    pub async fn next_ack(&mut self, timeout: Duration) -> Option<u16> {
        tokio::time::timeout(timeout, self.acks.recv())
            .await
            .ok()
            .flatten()
    }
}

/// An MQTT v5 client (rumqttc::v5) that reports acknowledgement reason codes.
pub struct V5Client {
    pub client: rumqttc::v5::AsyncClient,
    acks: mpsc::UnboundedReceiver<(u16, u8)>,
}

impl V5Client {
    pub async fn connect(addr: SocketAddr, id: &str) -> V5Client {
        let mut opts = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
        let (tx, acks) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = oneshot::channel();
        tokio::spawn(async move {
            use rumqttc::v5::mqttbytes::v5::Packet;
            use rumqttc::v5::Event;
            let mut conn_tx = Some(conn_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = tx.send((a.pkid, puback_code(a.reason)));
                    }
                    Ok(_) => {}
                    // rumqttc reports a PUBACK with a failure reason as an error.
                    Err(rumqttc::v5::ConnectionError::MqttState(
                        rumqttc::v5::StateError::PubAckFail { reason },
                    )) => {
                        let _ = tx.send((0, puback_code(reason)));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx)
            .await
            .expect("connack")
            .unwrap();
        V5Client { client, acks }
    }

    /// Waits for the next PUBACK: `(packet id, reason code)`.
    pub async fn next_ack(&mut self, timeout: Duration) -> Option<(u16, u8)> {
        tokio::time::timeout(timeout, self.acks.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The MQTT v5 reason code of a PUBACK reason.
fn puback_code(reason: rumqttc::v5::mqttbytes::v5::PubAckReason) -> u8 {
    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
    match reason {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}
