//! What the monitors tell the dataplane loop, through a bounded queue.
//!
//! A monitor never blocks on a slow consumer: when the queue is full the
//! event is dropped and the loss recorded, and the consumer, once it has
//! drained the queue, re-reads everything ([`EventQueue::take_lost`]) — the
//! same answer as a netlink overrun (ENOBUFS).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tortie_felix::RouteEvent;

/// One thing that happened in the kernel (or a wake-up from the owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A route in felix's table changed.
    Route(RouteEvent),
    /// A link went up, down, away or came, or an address went away: the
    /// kernel may have removed routes without telling (IPv4 does on link
    /// down), so the routes are read again.
    LinksChanged,
    /// One of felix's devices (tunl0, the VXLAN device), its addresses or
    /// its FDB / neighbour entries changed.
    DevicesChanged,
    /// Another program changed felix's nftables table.
    NatChanged,
    /// Notifications were lost (ENOBUFS): read everything again.
    Overflow,
    /// Not from the kernel: the owner has news for the loop.
    Wake,
}

/// The sending side, cloned into every monitor (and the owner, for [`KernelEvent::Wake`]).
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: SyncSender<KernelEvent>,
    lost: Arc<AtomicBool>,
}

impl EventSink {
    /// Queues `ev`; a full queue drops it and records the loss. False once
    /// the receiving side is gone (the monitor should stop).
    pub fn send(&self, ev: KernelEvent) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lost.store(true, Ordering::Release);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The receiving side, owned by the dataplane loop.
#[derive(Debug)]
pub struct EventQueue {
    rx: Receiver<KernelEvent>,
    lost: Arc<AtomicBool>,
}

impl EventQueue {
    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<KernelEvent, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next queued event, if any.
    pub fn try_recv(&self) -> Option<KernelEvent> {
        self.rx.try_recv().ok()
    }

    /// True (once) when events were dropped since the last call.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Ordering::AcqRel)
    }
}

/// A bounded queue of `capacity` events.
pub fn event_queue(capacity: usize) -> (EventSink, EventQueue) {
    let (tx, rx) = sync_channel(capacity);
    let lost = Arc::new(AtomicBool::new(false));
    (
        EventSink {
            tx,
            lost: lost.clone(),
        },
        EventQueue { rx, lost },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_event_and_records_the_loss() {
        let (sink, queue) = event_queue(1);
        assert!(sink.send(KernelEvent::Wake));
        assert!(sink.send(KernelEvent::LinksChanged));
        assert_eq!(queue.try_recv(), Some(KernelEvent::Wake));
        assert_eq!(queue.try_recv(), None);
        assert!(queue.take_lost());
        assert!(!queue.take_lost(), "reported once");
        drop(queue);
        assert!(!sink.send(KernelEvent::Wake), "the receiver is gone");
    }
}
