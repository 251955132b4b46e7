//! A record assembled from a publish's rendered templates and, with a transform, one of
//! its output records: what the module sets wins, templates fill what it leaves unset.

use super::publish::PublishInfo;
use crate::record::Record;
use crate::shape::{Failure, Shaped};

/// A record with the first template failure among the parts it took from templates
/// (those parts left out), or the failure of its topic, without which there is none.
pub type Built<'r> = Result<(Record<'r>, Option<&'r Failure<'r>>), &'r Failure<'r>>;

/// A transform's output record.
type ModuleRecord<'r> = abi::output::Record<'r>;

/// Builds the record of `p` from `shaped` and, with a transform, its record `module`;
/// `partition` is the entry's `remote.partition`.
pub fn build<'r, 's: 'r>(
    p: &'r PublishInfo<'_>,
    shaped: &'r Shaped<'s>,
    module: Option<&ModuleRecord<'r>>,
    partition: Option<i32>,
) -> Built<'r> {
    let mut failed = FirstFailure(None);
    // The pool checked a module's topics and header names to be valid UTF-8.
    let topic = match module.and_then(|m| m.topic) {
        Some(t) => std::str::from_utf8(t).unwrap_or_default(),
        None => shaped.topic()?,
    };
    let key = match module.and_then(|m| m.key) {
        Some(k) => Some(k),
        None => shaped.key().and_then(|r| failed.keep(r)),
    };
    let payload = match module {
        Some(m) => m.payload,
        None => Some(
            shaped
                .payload()
                .and_then(|r| failed.keep(r))
                .unwrap_or(&p.publish.payload),
        ),
    };
    let timestamp = match module.and_then(|m| m.timestamp) {
        Some(ts) => ts,
        None => shaped
            .timestamp()
            .and_then(|r| failed.keep(r))
            .unwrap_or(p.timestamp_ms),
    };
    let mut record = Record {
        payload,
        timestamp,
        partition: module.and_then(|m| m.partition).or(partition),
        ..p.record(topic, key)
    };
    let module_headers = || module.into_iter().flat_map(|m| m.headers.iter().flatten());
    for (name, value) in module_headers() {
        let name = std::str::from_utf8(name).unwrap_or_default();
        record.headers.push((name, value));
    }
    for (name, value) in shaped.headers() {
        let set_by_module = module_headers().any(|(n, _)| n == name.as_bytes());
        if let (false, Some(value)) = (set_by_module, failed.keep(value)) {
            record.headers.push((name, Some(value)));
        }
    }
    Ok((record, failed.0))
}

/// The first failure among the parts a record takes from templates.
struct FirstFailure<'r>(Option<&'r Failure<'r>>);

impl<'r> FirstFailure<'r> {
    /// A rendered part's value, or `None` (noting why) when it has none.
    fn keep<T>(&mut self, rendered: Result<T, &'r Failure<'r>>) -> Option<T> {
        rendered
            .map_err(|f| {
                self.0.get_or_insert(f);
            })
            .ok()
    }
}
