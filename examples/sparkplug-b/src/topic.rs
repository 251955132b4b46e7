//! Sparkplug B topics: `spBv1.0/<group>/<type>/<edge>[/<device>]`.

/// The message types the transform decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    NBirth,
    NData,
    NDeath,
    DBirth,
    DData,
    DDeath,
}

impl Kind {
    /// The spec's name, as in the topic.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NBirth => "NBIRTH",
            Kind::NData => "NDATA",
            Kind::NDeath => "NDEATH",
            Kind::DBirth => "DBIRTH",
            Kind::DData => "DDATA",
            Kind::DDeath => "DDEATH",
        }
    }

    /// Whether the topic names a device.
    fn is_device(self) -> bool {
        matches!(self, Kind::DBirth | Kind::DData | Kind::DDeath)
    }
}

/// A parsed topic, borrowing its IDs from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topic<'a> {
    pub group: &'a str,
    pub kind: Kind,
    pub edge: &'a str,
    /// `None` for node messages.
    pub device: Option<&'a str>,
}

/// What to do with a message, by its topic.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Edge node or device data: decode it.
    Decode(Topic<'a>),
    /// Commands to edge nodes and devices (NCMD, DCMD) and host application state
    /// (`spBv1.0/STATE/<host>`): valid Sparkplug, but not telemetry; dropped.
    Skip,
}

/// The namespace of Sparkplug B.
const NAMESPACE: &str = "spBv1.0";

/// Parses `topic`. A topic outside the namespace, an unknown message type, a wrong
/// number of levels or an empty ID is an error: the entry's topic filter sent the
/// transform something it cannot read.
pub fn parse(topic: &str) -> Result<Parsed<'_>, String> {
    let levels: Vec<&str> = topic.split('/').collect();
    if levels[0] != NAMESPACE {
        return Err(format!(
            "topic {topic:?} is not in the {NAMESPACE} namespace"
        ));
    }
    if levels.get(1) == Some(&"STATE") {
        return Ok(Parsed::Skip);
    }
    let kind = match levels.get(2).copied() {
        Some("NBIRTH") => Kind::NBirth,
        Some("NDATA") => Kind::NData,
        Some("NDEATH") => Kind::NDeath,
        Some("DBIRTH") => Kind::DBirth,
        Some("DDATA") => Kind::DData,
        Some("DDEATH") => Kind::DDeath,
        Some("NCMD" | "DCMD") => return Ok(Parsed::Skip),
        Some(other) => return Err(format!("topic {topic:?}: unknown message type {other:?}")),
        None => return Err(format!("topic {topic:?} has no message type")),
    };
    let want = if kind.is_device() { 5 } else { 4 };
    if levels.len() != want || levels.iter().any(|l| l.is_empty()) {
        let shape = if kind.is_device() {
            "/<edge>/<device>"
        } else {
            "/<edge>"
        };
        let name = kind.name();
        return Err(format!(
            "topic {topic:?} is not {NAMESPACE}/<group>/{name}{shape}"
        ));
    }
    Ok(Parsed::Decode(Topic {
        group: levels[1],
        kind,
        edge: levels[3],
        device: levels.get(4).copied(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(topic: &str) -> Topic<'_> {
        match parse(topic) {
            Ok(Parsed::Decode(t)) => t,
            other => panic!("{topic}: {other:?}"),
        }
    }

    #[test]
    fn node_and_device_topics() {
        let t = decoded("spBv1.0/plant1/NDATA/edge1");
        assert_eq!(
            (t.group, t.kind, t.edge, t.device),
            ("plant1", Kind::NData, "edge1", None)
        );
        let t = decoded("spBv1.0/plant 1/DBIRTH/edge-1/press:1");
        assert_eq!(
            (t.group, t.kind, t.edge, t.device),
            ("plant 1", Kind::DBirth, "edge-1", Some("press:1"))
        );
        for kind in ["NBIRTH", "NDEATH"] {
            assert_eq!(decoded(&format!("spBv1.0/g/{kind}/e")).kind.name(), kind);
        }
        for kind in ["DDATA", "DDEATH"] {
            assert_eq!(decoded(&format!("spBv1.0/g/{kind}/e/d")).kind.name(), kind);
        }
    }

    #[test]
    fn commands_and_host_state_are_skipped() {
        for topic in [
            "spBv1.0/g/NCMD/e",
            "spBv1.0/g/DCMD/e/d",
            "spBv1.0/STATE/scada1",
        ] {
            assert_eq!(parse(topic), Ok(Parsed::Skip), "{topic}");
        }
    }

    #[test]
    fn malformed_topics_are_errors() {
        let err = |topic| parse(topic).unwrap_err();
        assert_eq!(
            err("spAv1.0/g/NDATA/e"),
            r#"topic "spAv1.0/g/NDATA/e" is not in the spBv1.0 namespace"#
        );
        assert_eq!(
            err("spBv1.0/g/NFOO/e"),
            r#"topic "spBv1.0/g/NFOO/e": unknown message type "NFOO""#
        );
        assert_eq!(err("spBv1.0/g"), r#"topic "spBv1.0/g" has no message type"#);
        assert_eq!(
            err("spBv1.0/g/NDATA/e/d"),
            r#"topic "spBv1.0/g/NDATA/e/d" is not spBv1.0/<group>/NDATA/<edge>"#
        );
        assert_eq!(
            err("spBv1.0/g/DDATA/e"),
            r#"topic "spBv1.0/g/DDATA/e" is not spBv1.0/<group>/DDATA/<edge>/<device>"#
        );
        assert!(parse("spBv1.0//NDATA/e").is_err());
        assert!(parse("spBv1.0/g/DDATA/e/").is_err());
        assert!(parse("").is_err());
    }
}
