//! Upload slots: how many uploads the server receives and checks at once (each holds its audio in
//! memory), and how many of those one caller may hold, so a single client that opens uploads and
//! then stalls cannot lock every other client out. A slot is taken before the first message is read
//! and given back when the upload ends, however it ends (the guard is dropped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::caller::Caller;

/// Why an upload was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    #[error(
        "too many uploads in progress on this server (at most {limit} at once); retry shortly"
    )]
    ServerBusy { limit: usize },
    #[error("too many uploads in progress from this caller (at most {limit} at once per caller); finish or cancel one, then retry")]
    CallerBusy { limit: usize },
}

impl SlotRefusal {
    /// The `reason` label of `noteflow_uploads_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ServerBusy { .. } => "server_busy",
            Self::CallerBusy { .. } => "caller_busy",
        }
    }
}

pub struct UploadSlots {
    total: usize,
    per_caller: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_caller: HashMap<Caller, usize>,
}

impl UploadSlots {
    /// `total` slots, at most `per_caller` of them held by one caller (both at least 1).
    pub fn new(total: usize, per_caller: usize) -> Arc<Self> {
        let total = total.max(1);
        Arc::new(Self {
            total,
            per_caller: per_caller.clamp(1, total),
            held: Mutex::default(),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, caller: Caller) -> Result<UploadSlot, SlotRefusal> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.by_caller.get(&caller).copied().unwrap_or(0);
        // The caller's own limit first: a caller at its limit is told to finish its own uploads,
        // which is true even when the server is also full.
        if mine >= self.per_caller {
            return Err(SlotRefusal::CallerBusy {
                limit: self.per_caller,
            });
        }
        if held.total >= self.total {
            return Err(SlotRefusal::ServerBusy { limit: self.total });
        }
        held.total += 1;
        *held.by_caller.entry(caller.clone()).or_default() += 1;
        Ok(UploadSlot {
            slots: self.clone(),
            caller,
        })
    }

    /// Slots held now (all callers).
    pub fn in_use(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One held slot; given back on drop.
pub struct UploadSlot {
    slots: Arc<UploadSlots>,
    caller: Caller,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total -= 1;
        if let Some(count) = held.by_caller.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                // Forget callers with nothing in progress, so the map stays as small as the uploads.
                held.by_caller.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(n: u8) -> Caller {
        Caller::from_peer_ip(std::net::IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn one_caller_cannot_take_every_slot_and_slots_come_back_when_dropped() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.try_acquire(caller(1)).unwrap();
        let _a2 = slots.try_acquire(caller(1)).unwrap();
        assert_eq!(
            slots.try_acquire(caller(1)).err(),
            Some(SlotRefusal::CallerBusy { limit: 2 })
        );
        let _b1 = slots.try_acquire(caller(2)).unwrap();
        assert_eq!(
            slots.try_acquire(caller(3)).err(),
            Some(SlotRefusal::ServerBusy { limit: 3 })
        );
        drop(a1);
        assert_eq!(slots.in_use(), 2);
        let _c1 = slots.try_acquire(caller(3)).unwrap();
        assert_eq!(slots.held.lock().unwrap().by_caller.len(), 3);
    }
}
