//! Metric aliases in the entry's state store: what a BIRTH names, a DATA resolves.
//!
//! Keys (`<device>` is empty for the edge node's own metrics; Sparkplug IDs cannot
//! contain `/`, so keys cannot collide):
//!
//! | key | value |
//! |---|---|
//! | `birth/<group>/<edge>/` | the node's birth: birth id (u64 LE), then its bdSeq (u64 LE) if the NBIRTH had one |
//! | `birth/<group>/<edge>/<device>` | the device's birth: the node's birth id when the DBIRTH came, then the device's birth id |
//! | `alias/<group>/<edge>/<device>/<alias>` | birth id of the BIRTH that named it (u64 LE), datatype (u8), name (UTF-8) |
//!
//! The store has no "delete every key under a prefix", and a rebirth may reassign or drop
//! aliases. So each BIRTH gets a birth id, and an alias entry counts only while its
//! birth id is the current one: a new NBIRTH makes every earlier alias of the node and
//! of its devices stale at once (the spec has the node send every DBIRTH again after an
//! NBIRTH), a new DBIRTH every earlier alias of that device. Stale entries stay until a
//! later BIRTH reuses the alias; they are bounded by the aliases the fleet ever used.
//!
//! A BIRTH writes its aliases first and its birth record last, so another instance that
//! sees the new birth id also sees the aliases (each key is atomic; there are no
//! transactions). A DEATH removes the birth record, which makes the aliases stale: after
//! an NDEATH a node must be born again before its aliases mean anything. An NDEATH whose
//! bdSeq differs from the NBIRTH's is the late will of an earlier session (the spec's
//! reason for bdSeq) and is ignored.

use rmqtt_kafka_transform::state::{self, StateError};

use crate::topic::Topic;
use crate::value::DataType;

/// What a BIRTH said about an alias.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub datatype: DataType,
}

fn birth_key(t: &Topic) -> String {
    format!("birth/{}/{}/{}", t.group, t.edge, t.device.unwrap_or(""))
}

fn node_birth_key(t: &Topic) -> String {
    format!("birth/{}/{}/", t.group, t.edge)
}

fn alias_key(t: &Topic, alias: u64) -> String {
    let device = t.device.unwrap_or("");
    format!("alias/{}/{}/{device}/{alias}", t.group, t.edge)
}

/// The first `n` little-endian u64 of `bytes`, if it has them.
fn words<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    let mut out = [0; N];
    for (i, w) in out.iter_mut().enumerate() {
        *w = u64::from_le_bytes(bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?);
    }
    Some(out)
}

/// The node's current birth id; 0 when no NBIRTH is known (then a DBIRTH still
/// works, for a transform started after the node was born).
fn node_birth(t: &Topic, buf: &mut Vec<u8>) -> u64 {
    if state::get_into(node_birth_key(t), buf) {
        words::<1>(buf).map_or(0, |[id]| id)
    } else {
        0
    }
}

/// Records a BIRTH: each `(alias, name, datatype)`, then the birth record. `id` tells
/// this birth from the ones before (see [`birth_id`]); `bd_seq` is the NBIRTH's.
pub fn remember(
    t: &Topic,
    id: u64,
    bd_seq: Option<u64>,
    named: &[(u64, &str, DataType)],
) -> Result<(), StateError> {
    let mut value = Vec::new();
    for &(alias, name, datatype) in named {
        value.clear();
        value.extend_from_slice(&id.to_le_bytes());
        value.push(datatype.code());
        value.extend_from_slice(name.as_bytes());
        state::put(alias_key(t, alias), &value)?;
    }
    let record: Vec<u8> = match t.device {
        None => [Some(id), bd_seq]
            .into_iter()
            .flatten()
            .flat_map(u64::to_le_bytes)
            .collect(),
        Some(_) => {
            let node = node_birth(t, &mut value);
            [node, id].into_iter().flat_map(u64::to_le_bytes).collect()
        }
    };
    state::put(birth_key(t), record)
}

/// Forgets the birth of the topic's node or device. An NDEATH is ignored when both it
/// and the NBIRTH have a bdSeq and they differ. Returns whether a birth was forgotten.
pub fn forget(t: &Topic, bd_seq: Option<u64>) -> bool {
    let key = birth_key(t);
    if t.device.is_none() {
        let mut buf = Vec::new();
        let born = state::get_into(&key, &mut buf)
            .then(|| words::<2>(&buf))
            .flatten();
        if let (Some([_, born_seq]), Some(seq)) = (born, bd_seq) {
            if born_seq != seq {
                return false;
            }
        }
    }
    state::delete(key)
}

/// Resolves the aliases of one DATA message: reads the birth records once, then one key
/// per alias, into a buffer it reuses.
pub struct Resolver<'t> {
    topic: &'t Topic<'t>,
    /// The birth id an alias entry must carry; `None` when the node or device has no
    /// current birth, and nothing resolves.
    current: Option<u64>,
    buf: Vec<u8>,
}

impl<'t> Resolver<'t> {
    pub fn new(topic: &'t Topic<'t>) -> Resolver<'t> {
        let mut buf = Vec::with_capacity(64);
        let current = if !state::get_into(birth_key(topic), &mut buf) {
            None
        } else if topic.device.is_none() {
            words::<1>(&buf).map(|[id]| id)
        } else {
            // The device's birth counts only under the node birth it came after.
            let [node_then, device] = words::<2>(&buf).unwrap_or([u64::MAX, 0]);
            (node_then == node_birth(topic, &mut buf)).then_some(device)
        };
        Resolver {
            topic,
            current,
            buf,
        }
    }

    /// The name and datatype the current BIRTH gave `alias`, if it gave any.
    pub fn resolve(&mut self, alias: u64) -> Option<Named> {
        let current = self.current?;
        if !state::get_into(alias_key(self.topic, alias), &mut self.buf) {
            return None;
        }
        let ([id], rest) = (words::<1>(&self.buf)?, self.buf.get(8..)?);
        let (&code, name) = rest.split_first()?;
        if id != current {
            return None;
        }
        Some(Named {
            name: String::from_utf8(name.to_vec()).ok()?,
            datatype: DataType::from_code(code.into()).ok()?,
        })
    }
}

/// An id for one BIRTH: a hash of the publish time, the payload's timestamp and seq and
/// the bdSeq, so that two births of the same node or device get different ids even when
/// one of those repeats. FNV-1a: small, and collisions only matter within one node.
pub fn birth_id(
    publish_ms: i64,
    timestamp: Option<u64>,
    seq: Option<u64>,
    bd_seq: Option<u64>,
) -> u64 {
    let fields = [
        publish_ms as u64,
        timestamp.unwrap_or(u64::MAX),
        seq.unwrap_or(u64::MAX),
        bd_seq.unwrap_or(u64::MAX),
    ];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in fields.iter().flat_map(|f| f.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // 0 is the birth id of "no NBIRTH known"; no real birth may have it.
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: Topic = Topic {
        group: "g",
        kind: crate::topic::Kind::NData,
        edge: "e",
        device: None,
    };
    const DEVICE: Topic = Topic {
        device: Some("d"),
        kind: crate::topic::Kind::DData,
        ..NODE
    };

    fn resolve(t: &Topic, alias: u64) -> Option<String> {
        Resolver::new(t).resolve(alias).map(|n| n.name)
    }

    #[test]
    fn a_rebirth_replaces_the_aliases_of_the_node_and_its_devices() {
        remember(
            &NODE,
            7,
            Some(0),
            &[(1, "a", DataType::INT32), (2, "b", DataType::BOOLEAN)],
        )
        .unwrap();
        remember(&DEVICE, 8, None, &[(1, "dev-a", DataType::DOUBLE)]).unwrap();
        assert_eq!(resolve(&NODE, 1).as_deref(), Some("a"));
        assert_eq!(resolve(&DEVICE, 1).as_deref(), Some("dev-a"));
        // The rebirth names alias 1 again and drops alias 2.
        remember(&NODE, 9, Some(1), &[(1, "a2", DataType::INT32)]).unwrap();
        assert_eq!(resolve(&NODE, 1).as_deref(), Some("a2"));
        assert_eq!(resolve(&NODE, 2), None, "alias 2 was not in the rebirth");
        assert_eq!(
            resolve(&DEVICE, 1),
            None,
            "the device was born under the old NBIRTH"
        );
        remember(&DEVICE, 10, None, &[(1, "dev-a", DataType::DOUBLE)]).unwrap();
        assert_eq!(resolve(&DEVICE, 1).as_deref(), Some("dev-a"));
    }

    #[test]
    fn deaths_forget_and_a_stale_ndeath_does_not() {
        remember(&NODE, 7, Some(4), &[(1, "a", DataType::INT32)]).unwrap();
        remember(&DEVICE, 8, None, &[(1, "dev-a", DataType::DOUBLE)]).unwrap();
        assert!(
            !forget(&NODE, Some(3)),
            "the will of session 3 arrived after birth 4"
        );
        assert_eq!(resolve(&NODE, 1).as_deref(), Some("a"));
        assert!(forget(&DEVICE, None));
        assert_eq!(resolve(&DEVICE, 1), None);
        assert!(forget(&NODE, Some(4)));
        assert_eq!(resolve(&NODE, 1), None);
    }

    #[test]
    fn a_device_born_before_any_known_nbirth_resolves() {
        remember(&DEVICE, 8, None, &[(5, "x", DataType::STRING)]).unwrap();
        let named = Resolver::new(&DEVICE).resolve(5).unwrap();
        assert_eq!(
            named,
            Named {
                name: "x".into(),
                datatype: DataType::STRING
            }
        );
    }

    #[test]
    fn birth_ids_differ_when_any_field_does() {
        let base = birth_id(1, Some(2), Some(3), Some(4));
        assert_ne!(base, birth_id(2, Some(2), Some(3), Some(4)));
        assert_ne!(base, birth_id(1, Some(2), Some(3), None));
        assert_ne!(base, 0);
    }
}
