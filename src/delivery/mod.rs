//! A record's life, from an entry's hand to its one counted outcome: the [`Ledger`]
//! (the door, the delivery report, the count), the bridge's in-flight bound and pending
//! acknowledgements, the spool's pump, and the handover between producers at a reload.

pub mod acks;
pub mod handover;
pub mod inflight;
pub mod ledger;
pub mod pump;
pub mod tag;

pub use acks::{AckFailure, AckWait, Acks};
pub use handover::Handover;
pub use inflight::Inflight;
pub use ledger::{Bridge, Disk, Ledger, Ledgers, Outlet, Policy};
pub use pump::{Pump, Target};
