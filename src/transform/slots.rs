//! The slots of an instance pool, handed out first come first served. A slot holds an
//! instance, or is empty when its instance was discarded and not yet replaced; whoever
//! takes an empty slot fills it. Taking a slot and giving it back take one lock each; a
//! semaphore in front of the idle list cost two more atomic read-modify-writes and a
//! second lock per call. Among the free instances a thread prefers the one it used last,
//! whose memory its CPU's caches still hold (docs/benchmark-history.md, "The transform pool's
//! checkout and the call histogram").

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::thread_index::this_thread;

pub(super) struct Slots<T> {
    state: Mutex<State<T>>,
}

/// At most one of `idle` and `waiters` is non-empty, and `empty` is 0 while anyone
/// waits: a slot given back goes to the first waiter, and a taker waits only when no
/// slot is free.
struct State<T> {
    idle: Vec<Idle<T>>,
    /// Empty slots that nobody is filling.
    empty: usize,
    /// Takers waiting for a slot, oldest first. A waiter that gave up is skipped.
    waiters: VecDeque<oneshot::Sender<Option<T>>>,
}

/// A free instance, and the thread that used it last.
struct Idle<T> {
    item: T,
    thread: usize,
}

/// How many of the most recently freed instances a taker looks through for the one its
/// thread used last.
const AFFINITY_SCAN: usize = 8;

impl<T> State<T> {
    /// The free instance this thread used last if it is among the most recent ones (its
    /// memory is likely still in this CPU's caches), else the most recently freed.
    fn take_idle(&mut self) -> Option<T> {
        let me = this_thread();
        let newest = self.idle.len().checked_sub(1)?;
        let mut recent = self.idle.iter().rev().take(AFFINITY_SCAN);
        let at = recent
            .position(|i| i.thread == me)
            .map_or(newest, |back| newest - back);
        Some(self.idle.swap_remove(at).item)
    }
}

impl<T> Slots<T> {
    /// A pool of full slots, one per item.
    pub(super) fn new(items: Vec<T>) -> Slots<T> {
        Slots {
            state: Mutex::new(State {
                idle: items
                    .into_iter()
                    .map(|item| Idle {
                        item,
                        thread: usize::MAX,
                    })
                    .collect(),
                empty: 0,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// Takes a slot, waiting behind earlier takers while none is free: `Some` holds an
    /// instance, `None` is an empty slot the caller now owns (to fill, or to give back
    /// empty).
    pub(super) async fn take(&self) -> Option<T> {
        let receiver = {
            let mut state = self.state.lock();
            if let Some(item) = state.take_idle() {
                return Some(item);
            }
            if state.empty > 0 {
                state.empty -= 1;
                return None;
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.push_back(sender);
            receiver
        };
        let mut waiting = Waiting {
            slots: self,
            receiver,
        };
        // A sender is dropped unsent only with the queue, that is with `self`, which
        // this borrow keeps alive; so the receive always gets a slot.
        (&mut waiting.receiver).await.unwrap_or(None)
    }

    /// Gives a slot back: to the first waiter still waiting, otherwise to the idle list
    /// (or the count of empty slots).
    pub(super) fn give_back(&self, mut slot: Option<T>) {
        let mut state = self.state.lock();
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(slot) {
                Ok(()) => return,
                // That waiter gave up; the slot goes to the next one.
                Err(returned) => slot = returned,
            }
        }
        match slot {
            Some(item) => state.idle.push(Idle {
                item,
                thread: this_thread(),
            }),
            None => state.empty += 1,
        }
    }

    /// Takes an empty slot to fill, if one is unclaimed.
    pub(super) fn take_empty(&self) -> bool {
        let mut state = self.state.lock();
        let found = state.empty > 0;
        if found {
            state.empty -= 1;
        }
        found
    }

    /// Slots holding an instance that nobody has taken.
    pub(super) fn idle(&self) -> usize {
        self.state.lock().idle.len()
    }
}

/// A taker's place in the queue. Dropped before a slot arrived (the caller gave up),
/// it closes its channel; a slot that was sent in the meantime is given back.
struct Waiting<'s, T> {
    slots: &'s Slots<T>,
    receiver: oneshot::Receiver<Option<T>>,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(slot) = self.receiver.try_recv() {
            self.slots.give_back(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn takers_are_served_in_the_order_they_came() {
        let slots = Slots::new(vec![1]);
        let held = slots.take().await;
        assert_eq!(held, Some(1));
        let mut first = pin!(slots.take());
        let mut second = pin!(slots.take());
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        slots.give_back(held);
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(first.await, Some(1));
    }

    #[tokio::test]
    async fn a_slot_sent_to_a_taker_that_gave_up_goes_to_the_next() {
        let slots = Slots::new(vec![1]);
        let held = slots.take().await;
        let mut gives_up = Box::pin(slots.take());
        let mut next = pin!(slots.take());
        assert!(poll_once(gives_up.as_mut()).is_pending());
        assert!(poll_once(next.as_mut()).is_pending());
        // Sent to the first taker, which is dropped before it looks.
        slots.give_back(held);
        drop(gives_up);
        assert_eq!(next.await, Some(1));
        assert_eq!(slots.idle(), 0);
    }

    #[tokio::test]
    async fn a_taker_that_gave_up_before_the_slot_came_is_skipped() {
        let slots = Slots::new(vec![1]);
        let held = slots.take().await;
        let mut gives_up = Box::pin(slots.take());
        assert!(poll_once(gives_up.as_mut()).is_pending());
        drop(gives_up);
        slots.give_back(held);
        assert_eq!(slots.idle(), 1);
    }

    #[tokio::test]
    async fn a_thread_gets_back_the_instance_it_used_last() {
        let slots = Slots::new(vec![1, 2]);
        let (first, second) = (slots.take().await, slots.take().await);
        slots.give_back(first);
        // Another thread frees the other instance after this one freed its own.
        std::thread::scope(|s| s.spawn(|| slots.give_back(second)).join().unwrap());
        assert_eq!(slots.take().await, first, "not the newest, {second:?}");
        assert_eq!(slots.take().await, second);
    }

    #[tokio::test]
    async fn an_empty_slot_goes_to_a_waiter_or_is_counted_for_filling() {
        let slots = Slots::new(vec![1]);
        let _held = slots.take().await;
        let mut waiter = pin!(slots.take());
        assert!(poll_once(waiter.as_mut()).is_pending());
        slots.give_back(None);
        assert_eq!(waiter.await, None, "the waiter owns the empty slot");
        slots.give_back(None);
        assert!(slots.take_empty());
        assert!(!slots.take_empty(), "each empty slot is claimed once");
        slots.give_back(None);
        assert_eq!(slots.take().await, None);
    }
}
