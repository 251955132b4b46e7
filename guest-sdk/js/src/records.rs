//! What a script's `transform` returned, as records (docs/javascript.md, "Records"):
//! nothing, `null` or `[]` drops the message; a record object, or an array of them.
//! Anything else is an invalid output, and the error names what was wrong.
//!
//! Members are read by atoms interned once per instance ([`Members`]): looking a name up
//! by its text on every call cost more than the rest of the reading.

use rmqtt_kafka_transform::{Message, Outcome, Record};
use rquickjs::convert::Coerced;
use rquickjs::{Atom, Ctx, FromJs, Object, Persistent, Value};

use crate::bytes::with_bytes;

/// The names of a record's members, in the order the errors list them.
const NAMES: [&str; 6] = [
    "topic",
    "key",
    "headers",
    "payload",
    "partition",
    "timestamp",
];

/// The member names as atoms, kept for the instance's life.
pub(crate) struct Members {
    atoms: [Persistent<Atom<'static>>; 6],
    date: Persistent<Value<'static>>,
}

/// [`Members`] in one call's context.
struct Names<'js> {
    atoms: [Atom<'js>; 6],
    date: Value<'js>,
}

impl Members {
    pub(crate) fn new(ctx: &Ctx<'_>) -> rquickjs::Result<Members> {
        let mut atoms = Vec::with_capacity(NAMES.len());
        for name in NAMES {
            atoms.push(Persistent::save(ctx, Atom::from_str(ctx.clone(), name)?));
        }
        let date: Value = ctx.globals().get("Date")?;
        Ok(Members {
            atoms: atoms
                .try_into()
                .unwrap_or_else(|_| unreachable!("six names")),
            date: Persistent::save(ctx, date),
        })
    }

    fn restore<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Names<'js>> {
        let [a, b, c, d, e, f] = &self.atoms;
        let restore = |p: &Persistent<Atom<'static>>| p.clone().restore(ctx);
        Ok(Names {
            atoms: [
                restore(a)?,
                restore(b)?,
                restore(c)?,
                restore(d)?,
                restore(e)?,
                restore(f)?,
            ],
            date: self.date.clone().restore(ctx)?,
        })
    }
}

/// Why the returned value is not records.
pub(crate) enum Invalid {
    /// The value has the wrong shape; the text says what was wrong.
    Shape(String),
    /// Reading it ran script code (a getter, `toJSON`) that threw.
    Threw(rquickjs::Error),
}

impl From<rquickjs::Error> for Invalid {
    fn from(e: rquickjs::Error) -> Invalid {
        Invalid::Threw(e)
    }
}

fn shape<T>(text: String) -> Result<T, Invalid> {
    Err(Invalid::Shape(text))
}

/// The records in what `transform` returned for `msg`.
pub(crate) fn outcome<'js, 'm>(
    ctx: &Ctx<'js>,
    members: &Members,
    returned: Value<'js>,
    msg: &'m Message<'m>,
) -> Result<Outcome<'m>, Invalid> {
    if returned.is_undefined() || returned.is_null() {
        return Ok(Outcome::Drop);
    }
    if returned.is_promise() {
        let why = "transform returned a Promise: it must return its records, not wait for them (no `async function transform`)";
        return shape(why.to_owned());
    }
    let names = members.restore(ctx)?;
    if let Some(list) = returned.as_array() {
        let mut records = Vec::with_capacity(list.len());
        for (i, item) in list.iter::<Value>().enumerate() {
            let reader = Reader {
                ctx,
                names: &names,
                place: Place::Element(i),
            };
            records.push(reader.record(item?, msg)?);
        }
        return Ok(Outcome::from(records));
    }
    if returned.is_object() && !returned.is_function() {
        let reader = Reader {
            ctx,
            names: &names,
            place: Place::Single,
        };
        return Ok(reader.record(returned, msg)?.into());
    }
    shape(format!(
        "transform returned {}; return a record object, an array of records, or nothing to drop the message",
        described(&returned)
    ))
}

/// Which record an error is about.
#[derive(Clone, Copy)]
enum Place {
    Single,
    Element(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Single => f.write_str("the returned record"),
            Place::Element(i) => write!(f, "element {i} of the returned array"),
        }
    }
}

/// Reads one record object.
struct Reader<'a, 'js> {
    ctx: &'a Ctx<'js>,
    names: &'a Names<'js>,
    place: Place,
}

impl<'js> Reader<'_, 'js> {
    fn record<'m>(&self, value: Value<'js>, msg: &'m Message<'m>) -> Result<Record<'m>, Invalid> {
        let place = self.place;
        let Some(obj) = value
            .as_object()
            .filter(|_| !value.is_array() && !value.is_function() && !value.is_promise())
        else {
            return shape(format!(
                "{place} is {}, not a record object",
                described(&value)
            ));
        };
        self.known_members_only(obj)?;
        let [topic, key, headers, payload, partition, timestamp] = self
            .names
            .atoms
            .clone()
            .map(|atom| obj.get::<_, Value>(atom));
        let mut record = self.payload(payload?, msg)?;
        if let Some(topic) = optional(topic?) {
            match topic.as_string() {
                Some(s) => record = record.topic(s.to_string()?),
                None => {
                    return shape(format!(
                        "{place}: `topic` must be a string, not {}",
                        described(&topic)
                    ))
                }
            }
        }
        if let Some(key) = optional(key?) {
            match bytes(&key)? {
                Some(k) => record = record.key(k),
                None => {
                    return shape(format!(
                        "{place}: `key` must be a string or a Uint8Array, not {}",
                        described(&key)
                    ))
                }
            }
        }
        if let Some(p) = optional(partition?) {
            record = record.partition(self.partition(&p)?);
        }
        if let Some(t) = optional(timestamp?) {
            record = record.timestamp(self.timestamp(&t)?);
        }
        match optional(headers?) {
            Some(headers) => self.with_headers(record, &headers),
            None => Ok(record),
        }
    }

    /// Refuses a member that is not a record's (a misspelt `heders` would be lost).
    fn known_members_only(&self, obj: &Object<'js>) -> Result<(), Invalid> {
        for name in obj.keys::<Atom>() {
            let name = name?;
            if !self.names.atoms.contains(&name) {
                return shape(format!(
                    "{} has an unknown member `{}` (a record has {})",
                    self.place,
                    name.to_string()?,
                    NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// A record with the object's payload: the message's own without one, a null payload
    /// for `null`, bytes as they are, and any other value as its JSON.
    fn payload<'m>(&self, value: Value<'js>, msg: &'m Message<'m>) -> Result<Record<'m>, Invalid> {
        if value.is_undefined() {
            return Ok(Record::new(msg.payload()));
        }
        if value.is_null() {
            return Ok(Record::null_payload());
        }
        if let Some(b) = bytes(&value)? {
            return Ok(Record::new(b));
        }
        match self.ctx.json_stringify(value.clone())? {
            Some(json) => Ok(Record::new(json.to_string()?.into_bytes())),
            None => shape(format!(
                "{}: `payload` is {}, which has no JSON form",
                self.place,
                described(&value)
            )),
        }
    }

    /// The record's headers, from an object (`{name: value}`) or an array of
    /// `[name, value]` pairs (for repeated names).
    fn with_headers<'m>(
        &self,
        mut record: Record<'m>,
        headers: &Value<'js>,
    ) -> Result<Record<'m>, Invalid> {
        let place = self.place;
        if let Some(list) = headers.as_array() {
            for (i, pair) in list.iter::<Value>().enumerate() {
                let pair = pair?;
                let Some(entry) = pair.as_array().filter(|p| p.len() == 2) else {
                    return shape(format!(
                        "{place}: `headers[{i}]` must be a [name, value] pair, not {}",
                        described(&pair)
                    ));
                };
                let name: Value = entry.get(0)?;
                let Some(name) = name.as_string() else {
                    return shape(format!(
                        "{place}: the name of `headers[{i}]` must be a string, not {}",
                        described(&name)
                    ));
                };
                record = self.header(record, name.to_string()?, &entry.get(1)?)?;
            }
            return Ok(record);
        }
        let Some(obj) = headers.as_object().filter(|_| !headers.is_function()) else {
            return shape(format!(
                "{place}: `headers` must be an object or an array of [name, value] pairs, not {}",
                described(headers)
            ));
        };
        for prop in obj.props::<String, Value>() {
            let (name, value) = prop?;
            record = self.header(record, name, &value)?;
        }
        Ok(record)
    }

    /// Adds one header: bytes or a string as they are, a number or boolean as its text,
    /// `null` or `undefined` as a null value.
    fn header<'m>(
        &self,
        record: Record<'m>,
        name: String,
        value: &Value<'js>,
    ) -> Result<Record<'m>, Invalid> {
        if value.is_null() || value.is_undefined() {
            return Ok(record.null_header(name));
        }
        if let Some(b) = bytes(value)? {
            return Ok(record.header(name, b));
        }
        if value.is_number() || value.is_bool() {
            let Coerced(text) = Coerced::<String>::from_js(self.ctx, value.clone())?;
            return Ok(record.header(name, text.into_bytes()));
        }
        shape(format!(
            "{}: header `{name}` must be a string, a Uint8Array, a number, a boolean or null, not {}",
            self.place,
            described(value)
        ))
    }

    fn partition(&self, value: &Value<'js>) -> Result<i32, Invalid> {
        match value.as_number() {
            Some(n) if n.fract() == 0.0 && (0.0..=f64::from(i32::MAX)).contains(&n) => Ok(n as i32),
            _ => shape(format!(
                "{}: `partition` must be a whole number from 0 to {}, not {}",
                self.place,
                i32::MAX,
                described(value)
            )),
        }
    }

    /// Milliseconds since the epoch, from a number or a `Date`.
    fn timestamp(&self, value: &Value<'js>) -> Result<i64, Invalid> {
        let ms = match (value.as_number(), value.as_object()) {
            (Some(n), _) => Some(n),
            (None, Some(obj)) if obj.is_instance_of(&self.names.date) => {
                Some(Coerced::<f64>::from_js(self.ctx, value.clone())?.0)
            }
            _ => None,
        };
        match ms {
            Some(n) if n.fract() == 0.0 && n >= 0.0 && n <= i64::MAX as f64 => Ok(n as i64),
            _ => shape(format!(
                "{}: `timestamp` must be milliseconds since the epoch (a whole number ≥ 0) or a valid Date, not {}",
                self.place,
                described(value)
            )),
        }
    }
}

/// A string's UTF-8 bytes, or a copy of a `Uint8Array`'s or `ArrayBuffer`'s; `None` for
/// any other value.
fn bytes(value: &Value<'_>) -> Result<Option<Vec<u8>>, Invalid> {
    if let Some(s) = value.as_string() {
        return Ok(Some(s.to_string()?.into_bytes()));
    }
    Ok(with_bytes(value, <[u8]>::to_vec))
}

/// `undefined` and `null` are an unset member.
fn optional(value: Value<'_>) -> Option<Value<'_>> {
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// The value for an error message: `the number 3`, `a string`, `an array`, `null`.
fn described(value: &Value<'_>) -> String {
    if let Some(n) = value.as_number() {
        return format!("the number {n}");
    }
    let what = if value.is_null() {
        "null"
    } else if value.is_undefined() {
        "undefined"
    } else if value.is_bool() {
        "a boolean"
    } else if value.is_string() {
        "a string"
    } else if value.is_array() {
        "an array"
    } else if value.is_function() {
        "a function"
    } else if value.is_promise() {
        "a Promise"
    } else if value.is_object() {
        "an object"
    } else {
        value.type_name()
    };
    what.to_owned()
}
