//! Config-only shaping: the `${...}` templates of an entry's `remote.topic`, `remote.key`,
//! `remote.headers`, `remote.timestamp` and `remote.payload`, parsed at load and
//! rendered per message without a transform. A template that has no value for a
//! message fails with a [`Reason`]; the entry's `remote.on_template_error` decides what
//! happens to the record.

mod failure;
mod member;
mod render;
mod template;
mod timestamp;

pub use failure::{Failure, Field, Reason};
pub use render::{Message, Shaped, Templates};
pub use template::{Template, TemplateError, TopicTemplate};
