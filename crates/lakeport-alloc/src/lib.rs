//! The server's allocator: mimalloc, with a bounded cache of freed blocks of 16 KiB to
//! 8 MiB in front of it (issue 16).
//!
//! The server has mimalloc return freed memory to the system at once (purge delay 0, for the
//! peak RSS; see `main.rs`). Ingestion frees and allocates blocks of these sizes all the
//! time: the Parquet writer's page buffers, the reader's decompressed pages, the Arrow
//! buffers of each record batch. Each time, the freed pages went back to the system and the
//! next block of the same size was fresh memory, zeroed by the kernel one page fault at a
//! time: about a fifth of the CPU of a Parquet upload's ingest went into the kernel.
//!
//! Here a freed block of those sizes is kept, up to a budget in bytes (32 MiB unless
//! [`set_budget`] says otherwise), and handed to the next request of its size class, from
//! any thread. Sizes are rounded up to four classes per power of two (at most 25% more), so
//! that a block fits every request of its class, and a `realloc` within the class keeps
//! the block where it is. A full cache (or class) hands the block to mimalloc as before.
//! [`release`] returns every kept block to mimalloc, which purges it: a worker calls it
//! when it runs out of jobs, so that back-to-back batches reuse each other's blocks and an
//! idle worker keeps none. At no time does the cache hold more than its budget.
//!
//! The cache is lock-free: each class has a few slots, and a block changes hands by one
//! atomic swap (take) or compare-and-swap (keep) of its slot.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// Blocks of more than `2^(MIN_BITS - 1)` bytes (16 KiB) are kept...
const MIN_BITS: u32 = 15;
/// ...up to `2^MAX_BITS` bytes (8 MiB).
const MAX_BITS: u32 = 23;
/// Size classes per power of two.
const STEPS: usize = 4;
const CLASSES: usize = (MAX_BITS - MIN_BITS + 1) as usize * STEPS;
/// Blocks kept per class.
const SLOTS: usize = 32;
/// The alignment every kept block has (mimalloc's for blocks of these sizes); a request
/// asking for more goes to mimalloc.
const ALIGN: usize = 16;

/// The budget unless [`set_budget`] says otherwise.
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// mimalloc with a cache of freed blocks; see the crate's documentation.
pub struct Recycling {
    classes: [[AtomicPtr<u8>; SLOTS]; CLASSES],
    /// Bytes of the blocks kept now (rounded sizes).
    cached: AtomicUsize,
    budget: AtomicUsize,
}

/// The class of a request and the size of its blocks, for the requests the cache serves.
fn class(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size();
    if layout.align() > ALIGN || size <= 1 << (MIN_BITS - 1) {
        return None;
    }
    // The power of two at or above the size: 2^(bits - 1) < size <= 2^bits.
    let bits = usize::BITS - (size - 1).leading_zeros();
    if bits > MAX_BITS {
        return None;
    }
    let step = 1usize << (bits - 3);
    // 5 to 8 steps, as the size is over four.
    let rounded = size.div_ceil(step) * step;
    let index = (bits - MIN_BITS) as usize * STEPS + (rounded / step - 5);
    Some((index, rounded))
}

/// The size of the blocks of class `index`.
fn class_size(index: usize) -> usize {
    let bits = MIN_BITS as usize + index / STEPS;
    (5 + index % STEPS) << (bits - 3)
}

/// The layout a kept block has in mimalloc.
fn block_layout(rounded: usize) -> Layout {
    // A rounded size is at most 8 MiB: always a valid layout with this alignment.
    Layout::from_size_align(rounded, ALIGN).unwrap_or(Layout::new::<u8>())
}

impl Recycling {
    /// An empty cache with the default budget.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            classes: [const { [const { AtomicPtr::new(null_mut()) }; SLOTS] }; CLASSES],
            cached: AtomicUsize::new(0),
            budget: AtomicUsize::new(DEFAULT_BUDGET),
        }
    }

    /// Sets how many bytes of freed blocks may be kept (0: none). Blocks kept beyond a
    /// lower budget stay until taken or released.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of the blocks kept now.
    #[must_use]
    pub fn cached_bytes(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }

    /// Returns every kept block to mimalloc.
    pub fn release(&self) {
        for (index, slots) in self.classes.iter().enumerate() {
            let rounded = class_size(index);
            for slot in slots {
                if slot.load(Ordering::Relaxed).is_null() {
                    continue;
                }
                let block = slot.swap(null_mut(), Ordering::Acquire);
                if !block.is_null() {
                    self.cached.fetch_sub(rounded, Ordering::Relaxed);
                    // SAFETY: a kept block came from mimalloc with this layout, and the swap
                    // made it ours alone.
                    unsafe { MiMalloc.dealloc(block, block_layout(rounded)) };
                }
            }
        }
    }

    /// A kept block of class `index`, or null.
    fn take(&self, index: usize, rounded: usize) -> *mut u8 {
        for slot in &self.classes[index] {
            if slot.load(Ordering::Relaxed).is_null() {
                continue;
            }
            let block = slot.swap(null_mut(), Ordering::Acquire);
            if !block.is_null() {
                self.cached.fetch_sub(rounded, Ordering::Relaxed);
                return block;
            }
        }
        null_mut()
    }

    /// Keeps a freed block of class `index` if the budget and the class have room.
    fn keep(&self, index: usize, rounded: usize, block: *mut u8) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        if self.cached.fetch_add(rounded, Ordering::Relaxed) + rounded > budget {
            self.cached.fetch_sub(rounded, Ordering::Relaxed);
            return false;
        }
        for slot in &self.classes[index] {
            if slot
                .compare_exchange(null_mut(), block, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        self.cached.fetch_sub(rounded, Ordering::Relaxed);
        false
    }
}

impl Default for Recycling {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out is either mimalloc's answer to the request itself, or a
// block of at least the request's size and of `ALIGN` (at least the request's alignment)
// that mimalloc allocated for the same class and that no one else holds any more.
unsafe impl GlobalAlloc for Recycling {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((index, rounded)) = class(layout) else {
            // SAFETY: the caller's layout, as the caller promised.
            return unsafe { MiMalloc.alloc(layout) };
        };
        let block = self.take(index, rounded);
        if block.is_null() {
            // SAFETY: a non-zero size.
            unsafe { MiMalloc.alloc(block_layout(rounded)) }
        } else {
            block
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((index, rounded)) = class(layout) else {
            // SAFETY: as in `alloc`.
            return unsafe { MiMalloc.alloc_zeroed(layout) };
        };
        let block = self.take(index, rounded);
        if block.is_null() {
            // SAFETY: a non-zero size.
            unsafe { MiMalloc.alloc_zeroed(block_layout(rounded)) }
        } else {
            // SAFETY: the block holds at least `layout.size()` bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
            block
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some((index, rounded)) = class(layout) else {
            // SAFETY: allocated by mimalloc with this layout (`alloc` and `realloc` send
            // exactly these layouts there).
            return unsafe { MiMalloc.dealloc(block, layout) };
        };
        if !self.keep(index, rounded, block) {
            // SAFETY: a block of this class came from mimalloc with this layout.
            unsafe { MiMalloc.dealloc(block, block_layout(rounded)) };
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises that the new size, rounded up to the alignment, does
        // not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // SAFETY: a block that mimalloc allocated with `layout`.
            (None, None) => unsafe { MiMalloc.realloc(block, layout, new_size) },
            // The block already has the size of the new class.
            (Some((old, _)), Some((new, _))) if old == new => block,
            _ => {
                // SAFETY: a non-zero size (the caller's promise).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks hold at least the bytes copied and do not overlap;
                    // the old block is the caller's, with `layout`.
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

/// The process's cache: what [`Allocator`] allocates from, and what [`release`] and
/// [`set_budget`] act on.
static CACHE: Recycling = Recycling::new();

/// The allocator a binary declares with `#[global_allocator]`: [`Recycling`] over one
/// process-wide cache.
pub struct Allocator;

// SAFETY: forwards every call to `CACHE`, a `Recycling`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's promises, passed on.
        unsafe { CACHE.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { CACHE.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { CACHE.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { CACHE.realloc(block, layout, new_size) }
    }
}

/// Returns every block the process's cache keeps to mimalloc (a no-op in a process whose
/// allocator is not [`Allocator`]: its cache stays empty).
pub fn release() {
    CACHE.release();
}

/// Sets the process's cache budget in bytes (0 keeps nothing).
pub fn set_budget(bytes: usize) {
    CACHE.set_budget(bytes);
}

/// Bytes the process's cache keeps now.
#[must_use]
pub fn cached_bytes() -> usize {
    CACHE.cached_bytes()
}

#[cfg(test)]
mod tests;
