//! librdkafka's own view of each producer, from its statistics callback
//! (`statistics.interval.ms`): broker connection states, queued messages and bytes,
//! request round-trip times, retries and errors. Kept as a small summary per producer,
//! replaced every interval, and read by `/metrics` and `/health` at scrape time.

use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::statistics::Statistics;

use crate::config::BridgeConfig;

/// How often librdkafka reports, unless `[bridges.properties]` says otherwise.
pub const DEFAULT_INTERVAL_MS: &str = "5000";

/// The bridge's statistics interval: its `statistics.interval.ms` property, or the
/// default when unset, unparsable or 0 (which turns librdkafka's statistics off).
pub fn interval(bridge: &BridgeConfig) -> Duration {
    let ms = |v: &str| v.trim().parse::<u64>().ok().filter(|ms| *ms > 0);
    let set = bridge
        .active_properties()
        .filter(|(k, _)| k.trim() == "statistics.interval.ms")
        .find_map(|(_, v)| ms(v));
    Duration::from_millis(set.or_else(|| ms(DEFAULT_INTERVAL_MS)).unwrap_or(5000))
}

/// One producer's latest statistics; `None` until the first report.
#[derive(Default)]
pub struct ClientStats {
    latest: Mutex<Option<Summary>>,
}

/// What the series and the health verdict need of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub client_id: String,
    /// Messages and bytes in librdkafka's queues, not yet acknowledged.
    pub queued_messages: u64,
    pub queued_bytes: u64,
    /// The Kafka brokers (librdkafka's internal pseudo-broker left out).
    pub brokers: Vec<BrokerSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSummary {
    /// `host:port/id` as librdkafka names it.
    pub name: String,
    /// The connection is up (librdkafka's state `UP`).
    pub up: bool,
    /// Average request round-trip time over librdkafka's last window, in seconds.
    pub rtt_seconds: f64,
    pub retries: u64,
    /// Transmit and receive errors, and requests that timed out.
    pub errors: u64,
}

impl ClientStats {
    pub fn update(&self, s: &Statistics) {
        *self.latest.lock() = Some(Summary::from_statistics(s));
    }

    pub fn latest(&self) -> Option<Summary> {
        self.latest.lock().clone()
    }
}

impl Summary {
    fn from_statistics(s: &Statistics) -> Summary {
        let mut brokers: Vec<BrokerSummary> = s
            .brokers
            .values()
            .filter(|b| b.source != "internal")
            .map(|b| BrokerSummary {
                name: b.name.clone(),
                up: b.state == "UP",
                rtt_seconds: b.rtt.as_ref().map_or(0.0, |w| w.avg as f64 / 1e6),
                retries: b.txretries,
                errors: b.txerrs + b.rxerrs + b.req_timeouts,
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        Summary {
            client_id: s.client_id.clone(),
            queued_messages: s.msg_cnt,
            queued_bytes: s.msg_size,
            brokers,
        }
    }

    /// Whether any Kafka broker is connected.
    pub fn any_broker_up(&self) -> bool {
        self.brokers.iter().any(|b| b.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_a_report() {
        let raw = r#"{"name":"p#producer-1","client_id":"c1","type":"producer","ts":1,"time":1,"age":1,
            "replyq":0,"msg_cnt":3,"msg_size":300,"msg_max":10,"msg_size_max":1000,"simple_cnt":0,
            "metadata_cache_cnt":0,"tx":0,"tx_bytes":0,"rx":0,"rx_bytes":0,"txmsgs":0,"txmsg_bytes":0,
            "rxmsgs":0,"rxmsg_bytes":0,"topics":{},
            "brokers":{"k:9092/1":{"name":"k:9092/1","nodeid":1,"nodename":"k:9092","source":"learned",
              "state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,
              "waitresp_msg_cnt":0,"tx":1,"txbytes":1,"txerrs":1,"txretries":2,"req_timeouts":1,
              "rx":1,"rxbytes":1,"rxerrs":1,"rxcorriderrs":0,"rxpartial":0,"txidle":0,"rxidle":0,"zbuf_grow":0,"buf_grow":0,
              "req":{},"toppars":{},
              "rtt":{"min":1,"max":1,"avg":2000,"sum":1,"cnt":1,"stddev":0,"hdrsize":0,"p50":1,
                "p75":1,"p90":1,"p95":1,"p99":1,"p99_99":1,"outofrange":0}},
             ":0/internal":{"name":":0/internal","nodeid":-1,"nodename":"","source":"internal",
              "state":"INIT","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,
              "waitresp_msg_cnt":0,"tx":0,"txbytes":0,"txerrs":0,"txretries":0,"req_timeouts":0,
              "rx":0,"rxbytes":0,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,"txidle":0,"rxidle":0,"zbuf_grow":0,"buf_grow":0,
              "req":{},"toppars":{}}}}"#;
        let stats = ClientStats::default();
        stats.update(&serde_json::from_str(raw).unwrap());
        let s = stats.latest().unwrap();
        assert_eq!(
            (s.client_id.as_str(), s.queued_messages, s.queued_bytes),
            ("c1", 3, 300)
        );
        assert_eq!(s.brokers.len(), 1, "the internal broker is left out");
        let b = &s.brokers[0];
        assert_eq!(
            (b.up, b.rtt_seconds, b.retries, b.errors),
            (true, 0.002, 2, 3)
        );
        assert!(s.any_broker_up());
    }
}
