//! The module side of ABI v1, behind the exports that `#[transform]` generates.
//!
//! The serialization is written against an `addr` function (a slice's address in linear
//! memory) so that it runs natively in tests, where `addr` copies the slice into a fake
//! memory and the result is read back with the host's own decoder.
// Natively only the tests use the serializer.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::any::Any;
use std::fmt::Display;

use abi::output::{
    error_header, invalid_header, ok_header, HeaderDescriptor, RecordDescriptor, Region,
    HEADER_ENTRY_LEN,
};

use crate::{Config, Error, IntoBytes, Message, Outcome, Record, RecordBytes};

/// The user's function behind an adapter: the message, the config, and the state the
/// init function made (`()` without one).
pub type TransformFn =
    for<'m> fn(&'m Message<'m>, &'m Config, &'m dyn Any) -> Result<Outcome<'m>, Error>;

/// What the init adapter returns: the instance's state, if the init function makes one.
pub type InitResult = Result<Option<Box<dyn Any>>, Error>;

/// The user's init function behind an adapter (`#[transform(init = ...)]`).
pub type InitFn = fn(&Config) -> InitResult;

/// What an init function that makes the state `S` returned, boxed for the instance to
/// keep. Naming `S` here makes an init function of another type a type error at its call.
pub fn keep_state<S: Any, E: Display>(made: Result<S, E>) -> InitResult {
    match made {
        Ok(state) => Ok(Some(Box::new(state))),
        Err(e) => Err(Error::msg(e)),
    }
}

/// What a `#[transform]` function may return: `Outcome` or `Result<Outcome, E>` with a
/// printable `E` that borrows nothing (such as [`Error`] or any `std::error::Error`).
#[diagnostic::on_unimplemented(
    message = "a #[transform] function must return `Outcome` or `Result<Outcome, E>` where `E: Display`, not `{Self}`",
    label = "this return type is not supported"
)]
pub trait IntoResult<'m> {
    /// The result as the SDK handles it.
    fn into_result(self) -> Result<Outcome<'m>, Error>;
}

impl<'m> IntoResult<'m> for Outcome<'m> {
    fn into_result(self) -> Result<Outcome<'m>, Error> {
        Ok(self)
    }
}

impl<'m, E: Display + 'static> IntoResult<'m> for Result<Outcome<'m>, E> {
    fn into_result(self) -> Result<Outcome<'m>, Error> {
        self.map_err(|e| {
            // An `Error` is kept as it is: an `Error::invalid_output` must stay one.
            let mut slot = Some(e);
            match (&mut slot as &mut dyn Any).downcast_mut::<Option<Error>>() {
                Some(error) => error.take().expect("the slot was filled above"),
                None => Error::msg(slot.expect("the slot was filled above")),
            }
        })
    }
}

/// What an init function (`#[transform(init = ...)]`) may return: `()` or `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "a #[transform(init = ...)] function must return `()` or `Result<(), E>` where `E: Display`, not `{Self}`"
)]
pub trait IntoInitResult {
    /// The result as the SDK handles it.
    fn into_init_result(self) -> Result<(), Error>;
}

impl IntoInitResult for () {
    fn into_init_result(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<E: Display> IntoInitResult for Result<(), E> {
    fn into_init_result(self) -> Result<(), Error> {
        self.map_err(Error::msg)
    }
}

/// `buf[ptr - base ..][..len]`, if `(ptr, len)` lies inside `buf`, which starts at `base`.
pub(crate) fn input_slice(buf: &[u8], base: u32, ptr: u32, len: u32) -> Option<&[u8]> {
    let start = ptr.checked_sub(base)? as usize;
    buf.get(start..start.checked_add(len as usize)?)
}

/// The output document of the last call and everything it points at, kept alive until
/// the next call.
#[derive(Default)]
pub(crate) struct Output {
    /// Payloads, keys, topics, header names and values the transform created or shares
    /// between records (borrowed ones stay where they are, usually in the input buffer).
    owned: Vec<RecordBytes<'static>>,
    /// The header tables of all records, one after the other.
    headers: Vec<[u8; HEADER_ENTRY_LEN]>,
    /// Descriptors whose `headers.0` is still an index into `headers`.
    records: Vec<RecordDescriptor>,
    /// The document itself.
    doc: Vec<u8>,
}

impl Output {
    pub(crate) const fn new() -> Output {
        Output {
            owned: Vec::new(),
            headers: Vec::new(),
            records: Vec::new(),
            doc: Vec::new(),
        }
    }

    /// Frees what the previous document pointed at.
    pub(crate) fn clear(&mut self) {
        self.owned.clear();
        self.headers.clear();
        self.records.clear();
        self.doc.clear();
    }

    /// Serializes a transform's result; returns the packed `(ptr, len)` of the document.
    pub(crate) fn write(
        &mut self,
        result: Result<Outcome<'_>, Error>,
        addr: &mut impl FnMut(&[u8]) -> u32,
    ) -> u64 {
        self.clear();
        match result.and_then(|outcome| outcome.validate().map(|()| outcome)) {
            // No Vec for the common single record.
            Ok(Outcome::Drop) => self.write_records(std::iter::empty(), addr),
            Ok(Outcome::Record(record)) => self.write_records(std::iter::once(record), addr),
            Ok(Outcome::Records(records)) => self.write_records(records, addr),
            Err(err) if err.is_invalid_output() => {
                let header = invalid_header(err.message().len() as u32);
                self.write_message(header, err.message(), addr)
            }
            Err(err) => self.write_error(err.message(), addr),
        }
    }

    /// Serializes an ERROR document.
    pub(crate) fn write_error(
        &mut self,
        message: &str,
        addr: &mut impl FnMut(&[u8]) -> u32,
    ) -> u64 {
        self.write_message(error_header(message.len() as u32), message, addr)
    }

    /// Serializes an ERROR or INVALID document.
    fn write_message(
        &mut self,
        header: [u8; abi::output::HEADER_LEN],
        message: &str,
        addr: &mut impl FnMut(&[u8]) -> u32,
    ) -> u64 {
        self.clear();
        self.doc.extend_from_slice(&header);
        self.doc.extend_from_slice(message.as_bytes());
        abi::pack(addr(&self.doc), self.doc.len() as u32)
    }

    fn write_records<'r>(
        &mut self,
        records: impl IntoIterator<Item = Record<'r>>,
        addr: &mut impl FnMut(&[u8]) -> u32,
    ) -> u64 {
        for record in records {
            let first_header = self.headers.len() as u32;
            let header_count = record.headers.len() as u32;
            for (name, value) in record.headers {
                let name = self.keep(name, addr);
                let value = value.map(|v| self.keep(v, addr));
                self.headers
                    .push(HeaderDescriptor { name, value }.to_bytes());
            }
            let descriptor = RecordDescriptor {
                partition: record.partition,
                timestamp: record.timestamp,
                topic: record.topic.map(|t| self.keep(t, addr)),
                key: record.key.map(|k| self.keep(k, addr)),
                payload: record.payload.map(|p| self.keep(p, addr)),
                headers: (first_header, header_count),
            };
            self.records.push(descriptor);
        }
        // Every header table is in place now, so `headers` will not move any more.
        let table = if self.headers.is_empty() {
            0
        } else {
            addr(self.headers.as_flattened())
        };
        self.doc
            .reserve_exact(abi::output::HEADER_LEN + self.records.len() * abi::output::RECORD_LEN);
        self.doc
            .extend_from_slice(&ok_header(self.records.len() as u32));
        for record in &mut self.records {
            let (first, count) = record.headers;
            record.headers = if count == 0 {
                (0, 0)
            } else {
                (table + first * HEADER_ENTRY_LEN as u32, count)
            };
            self.doc.extend_from_slice(&record.to_bytes());
        }
        abi::pack(addr(&self.doc), self.doc.len() as u32)
    }

    /// The region of `bytes`; owned bytes move into `self.owned` (their heap buffer does not
    /// move with them, so the address stays valid).
    fn keep<'b>(
        &mut self,
        bytes: impl IntoBytes<'b>,
        addr: &mut impl FnMut(&[u8]) -> u32,
    ) -> Region {
        let bytes = bytes.into_bytes();
        let region = (addr(&bytes), bytes.len() as u32);
        if let Some(buffer) = bytes.into_buffer() {
            self.owned.push(buffer);
        }
        region
    }
}

/// The exports' implementation; only meaningful inside a WebAssembly instance.
#[cfg(target_arch = "wasm32")]
pub(crate) mod wasm {
    use std::cell::RefCell;

    use std::any::Any;

    use super::{input_slice, InitFn, Output, TransformFn};
    use crate::{Config, Error, Message};

    /// Per-instance state. A module instance is single-threaded and the host never calls
    /// it re-entrantly, so the `RefCell` is never contended.
    struct State {
        /// The buffer `rmqtt_transform_reserve` hands out; input documents live here.
        input: Vec<u8>,
        config: Config,
        /// What the init function made of the config, if it makes something.
        state: Option<Box<dyn Any>>,
        output: Output,
    }

    thread_local! {
        static STATE: RefCell<State> = const {
            RefCell::new(State { input: Vec::new(), config: Config::new(), state: None, output: Output::new() })
        };
    }

    /// The address of a slice in linear memory (pointers are 32 bits on wasm32).
    fn addr(bytes: &[u8]) -> u32 {
        bytes.as_ptr() as usize as u32
    }

    fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                // "panicked at src/lib.rs:12:5:\nmessage"
                let message = info.to_string();
                crate::sys::abort(&message)
            }))
        });
    }

    /// `rmqtt_transform_reserve(len) -> ptr`.
    pub fn reserve(len: i32) -> i32 {
        let len = (len as u32 as usize).max(1);
        STATE.with_borrow_mut(|state| {
            // The previous output may point into the old buffer; it is dead from now on.
            state.output.clear();
            if state.input.len() < len {
                state.input = Vec::new();
                let mut buf = Vec::new();
                if buf.try_reserve_exact(len).is_err() {
                    return 0;
                }
                buf.resize(len, 0);
                state.input = buf;
            }
            addr(&state.input) as i32
        })
    }

    /// `rmqtt_transform_init(ptr, len) -> packed output`.
    pub fn init(ptr: i32, len: i32, check: Option<InitFn>) -> i64 {
        install_panic_hook();
        STATE.with_borrow_mut(|state| {
            let State {
                input,
                config,
                state,
                output,
            } = state;
            let result = match input_slice(input, addr(input), ptr as u32, len as u32) {
                Some(doc) => Config::decode(doc),
                None => Err(Error::msg(
                    "the config document is not inside the buffer from rmqtt_transform_reserve",
                )),
            };
            let result = result.and_then(|cfg| {
                *state = check.map_or(Ok(None), |check| check(&cfg))?;
                *config = cfg;
                Ok(crate::Outcome::Drop)
            });
            output.write(result, &mut addr) as i64
        })
    }

    /// `rmqtt_transform(ptr, len) -> packed output`.
    pub fn transform(ptr: i32, len: i32, f: TransformFn) -> i64 {
        install_panic_hook();
        STATE.with_borrow_mut(|state| {
            let State {
                input,
                config,
                state,
                output,
            } = state;
            let Some(doc) = input_slice(input, addr(input), ptr as u32, len as u32) else {
                let message =
                    "the input document is not inside the buffer from rmqtt_transform_reserve";
                return output.write_error(message, &mut addr) as i64;
            };
            let msg = match Message::decode(doc) {
                Ok(msg) => msg,
                Err(err) => return output.write_error(err.message(), &mut addr) as i64,
            };
            let result = f(&msg, config, state.as_deref().unwrap_or(&()));
            output.write(result, &mut addr) as i64
        })
    }
}

#[cfg(test)]
mod tests {
    use abi::output::{read_output, Output as Doc};

    use super::*;
    use crate::TestMessage;

    /// A fake linear memory: `addr` copies the slice in and returns its offset.
    #[derive(Default)]
    struct Memory(Vec<u8>);

    impl Memory {
        fn addr(&mut self) -> impl FnMut(&[u8]) -> u32 + '_ {
            |bytes| {
                let at = self.0.len() as u32 + 1;
                self.0.push(0xAA); // keep distinct slices at distinct addresses
                self.0.extend_from_slice(bytes);
                at
            }
        }
    }

    type Flat = (
        Option<i32>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Vec<(String, Option<String>)>,
    );

    fn text(b: Option<&[u8]>) -> Option<String> {
        b.map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    fn roundtrip(result: Result<Outcome<'_>, Error>) -> Result<Vec<Flat>, String> {
        let mut mem = Memory::default();
        let mut out = Output::new();
        let packed = out.write(result, &mut mem.addr());
        let (ptr, len) = abi::unpack(packed);
        match read_output(&mem.0, ptr, len).unwrap() {
            Doc::Error(msg) | Doc::Invalid(msg) => Err(String::from_utf8(msg.to_vec()).unwrap()),
            Doc::Records(records) => Ok(records
                .iter()
                .map(|r| {
                    let r = r.unwrap();
                    // Whatever the SDK lets through, the host accepts.
                    abi::rules::check_record(&r).unwrap();
                    let headers = r
                        .headers
                        .iter()
                        .map(|h| h.unwrap())
                        .map(|(n, v)| (text(Some(n)).unwrap(), text(v)))
                        .collect();
                    (
                        r.partition,
                        r.timestamp,
                        text(r.topic),
                        text(r.key),
                        text(r.payload),
                        headers,
                    )
                })
                .collect()),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn drop_is_an_empty_ok_document() {
        assert_eq!(roundtrip(Ok(Outcome::Drop)), Ok(vec![]));
        assert_eq!(roundtrip(Ok(Outcome::Records(vec![]))), Ok(vec![]));
    }

    #[test]
    fn records_roundtrip_through_the_host_decoder() {
        let t = TestMessage::new("a/b", "payload");
        let msg = t.message();
        let owned_key = String::from("key-1");
        let outcome = Outcome::Records(vec![
            Record::new(msg.payload()),
            Record::new(vec![1u8, 2])
                .key(owned_key)
                .topic("alarms")
                .partition(3)
                .timestamp(-7)
                .header("site", "berlin")
                .null_header(String::from("empty"))
                .header(String::from("n"), String::from("v")),
            Record::null_payload()
                .key(msg.topic())
                .header("x", &b"y"[..]),
        ]);
        let got = roundtrip(Ok(outcome)).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (None, None, None, None, s("payload"), vec![]));
        assert_eq!(
            got[1],
            (
                Some(3),
                Some(-7),
                s("alarms"),
                s("key-1"),
                Some("\u{1}\u{2}".to_owned()),
                vec![
                    ("site".into(), s("berlin")),
                    ("empty".into(), None),
                    ("n".into(), s("v"))
                ]
            )
        );
        assert_eq!(
            got[2],
            (None, None, None, s("a/b"), None, vec![("x".into(), s("y"))])
        );
    }

    #[test]
    fn errors_become_error_documents() {
        assert_eq!(roundtrip(Err(Error::msg("boom"))), Err("boom".into()));
        assert_eq!(roundtrip(Err(Error::msg(""))), Err(String::new()));
    }

    #[test]
    fn invalid_records_become_error_documents() {
        assert_eq!(
            roundtrip(Ok(Record::new("x").topic("a/b").into())),
            Err(r#""a/b" is not a valid Kafka topic name: '/' is not allowed (only a-z A-Z 0-9 . _ -)"#.into())
        );
        assert!(roundtrip(Ok(Record::new("x").topic("").into())).is_err());
        assert!(roundtrip(Ok(Record::new("x").topic("a".repeat(250)).into())).is_err());
        assert!(roundtrip(Ok(Record::new("x").topic("a".repeat(249)).into())).is_ok());
        assert_eq!(
            roundtrip(Ok(Record::new("x").partition(-1).into())),
            Err("partition -1 is negative".into())
        );
        let many: Outcome = (0..65_537).map(|_| Record::new("x")).collect();
        assert_eq!(
            roundtrip(Ok(many)),
            Err("the transform returned 65537 records, the ABI's ceiling is 65536".into())
        );
        let max: Outcome = (0..1024).map(|_| Record::new("x")).collect();
        assert_eq!(roundtrip(Ok(max)).unwrap().len(), 1024);
        let headers = (0..1025).fold(Record::new("x"), |r, i| r.header(i.to_string(), "v"));
        assert_eq!(
            roundtrip(Ok(headers.into())),
            Err("a record has 1025 headers, the limit is 1024".into())
        );
    }

    /// Routes each message to the Kafka topic named by the second level of its MQTT topic.
    #[crate::transform]
    fn route_by_level(msg: &Message) -> Outcome {
        match msg.topic_level(1) {
            Some(level) => Record::new(msg.payload()).topic(level).into(),
            None => Outcome::Drop,
        }
    }

    #[test]
    fn dot_topics_never_reach_the_host() {
        for level in [".", ".."] {
            let t = TestMessage::new(format!("plant/{level}/line1"), "v");
            let msg = t.message();
            let outcome = route_by_level(&msg);
            let expected = format!(
                r#""{level}" is not a valid Kafka topic name (Kafka reserves "." and "..")"#
            );
            assert_eq!(outcome.validate().unwrap_err().to_string(), expected);
            assert_eq!(roundtrip(Ok(outcome)), Err(expected));
        }
        for level in ["a.b", "..a"] {
            let t = TestMessage::new(format!("plant/{level}/line1"), "v");
            let got = roundtrip(Ok(route_by_level(&t.message()))).unwrap();
            assert_eq!(got[0].2.as_deref(), Some(level));
        }
    }

    #[test]
    fn owned_data_is_kept_until_the_next_call() {
        let mut out = Output::new();
        let mut addr = |b: &[u8]| b.as_ptr() as usize as u32;
        out.write(
            Ok(Record::new(String::from("owned"))
                .key(vec![1])
                .header(String::from("h"), vec![2])
                .into()),
            &mut addr,
        );
        assert_eq!(out.owned.len(), 4);
        assert_eq!(out.headers.len(), 1);
        out.write(Ok(Outcome::Drop), &mut addr);
        assert!(out.owned.is_empty() && out.headers.is_empty());
    }

    #[test]
    fn a_shared_buffer_is_one_region_for_every_record() {
        let body: std::rc::Rc<[u8]> = std::rc::Rc::from(&b"reshaped"[..]);
        let mut out = Output::new();
        let mut addr = |b: &[u8]| b.as_ptr() as usize as u32;
        let fan_out = ["a", "b", "c"].map(|topic| Record::new(body.clone()).topic(topic));
        out.write(Ok(Outcome::Records(fan_out.into())), &mut addr);
        let payloads: Vec<_> = out.records.iter().map(|r| r.payload).collect();
        let region = Some((body.as_ptr() as usize as u32, body.len() as u32));
        assert_eq!(payloads, [region; 3], "the records point at the one buffer");
        assert_eq!(std::rc::Rc::strong_count(&body), 4, "kept, not copied");
        out.write(Ok(Outcome::Drop), &mut addr);
        assert_eq!(
            std::rc::Rc::strong_count(&body),
            1,
            "released at the next call"
        );
    }

    #[test]
    fn input_must_lie_inside_the_buffer() {
        let buf = [1u8, 2, 3, 4];
        assert_eq!(input_slice(&buf, 100, 100, 4), Some(&buf[..]));
        assert_eq!(input_slice(&buf, 100, 101, 2), Some(&buf[1..3]));
        assert_eq!(input_slice(&buf, 100, 104, 0), Some(&buf[4..]));
        assert_eq!(input_slice(&buf, 100, 99, 1), None);
        assert_eq!(input_slice(&buf, 100, 101, 4), None);
        assert_eq!(input_slice(&buf, 100, 105, 0), None);
        assert_eq!(input_slice(&buf, 100, u32::MAX, u32::MAX), None);
    }

    #[test]
    fn into_result_accepts_both_return_shapes() {
        assert!(Outcome::Drop.into_result().unwrap().is_drop());
        let err: Result<Outcome, std::num::ParseIntError> =
            "x".parse::<u8>().map(|_| Outcome::Drop);
        assert_eq!(
            err.into_result().unwrap_err().to_string(),
            "invalid digit found in string"
        );
        let invalid: Result<Outcome, Error> = Err(Error::invalid_output("not records"));
        assert!(invalid.into_result().unwrap_err().is_invalid_output());
        assert!(().into_init_result().is_ok());
        assert_eq!(
            Err::<(), _>("bad")
                .into_init_result()
                .unwrap_err()
                .to_string(),
            "bad"
        );
    }
}
