use std::alloc::{GlobalAlloc, Layout};

use super::*;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Fills `size` bytes at `block` with a pattern of `seed`.
fn fill(block: *mut u8, size: usize, seed: u8) {
    for offset in 0..size {
        unsafe { block.add(offset).write(seed.wrapping_add(offset as u8)) };
    }
}

fn holds(block: *const u8, size: usize, seed: u8) -> bool {
    (0..size).all(|offset| unsafe { block.add(offset).read() } == seed.wrapping_add(offset as u8))
}

#[test]
fn classes_cover_16_kib_to_8_mib_with_at_most_a_quarter_more() {
    assert_eq!(class(layout(16 << 10)), None);
    assert_eq!(class(layout(0)), None);
    assert_eq!(class(layout((8 << 20) + 1)), None);
    assert_eq!(class(Layout::from_size_align(64 << 10, 64).unwrap()), None);
    let mut last = (0, 0);
    for size in ((16 << 10) + 1..=8 << 20)
        .step_by(509)
        .chain([(16 << 10) + 1, 8 << 20])
    {
        let (index, rounded) = class(layout(size)).unwrap();
        assert!(index < CLASSES, "{size}");
        assert!(
            rounded >= size && rounded * 4 <= size * 5 + 4 * 4096,
            "{size} → {rounded}"
        );
        assert_eq!(class_size(index), rounded, "{size}");
        // Every size of a class gets the same block size; classes grow with the size.
        assert_eq!(class(layout(rounded)), Some((index, rounded)));
        if size > last.1 {
            assert!(index >= last.0, "{size}");
        }
        last = (index, rounded);
    }
    assert_eq!(class(layout(8 << 20)), Some((CLASSES - 1, 8 << 20)));
}

#[test]
fn a_freed_block_serves_the_next_request_of_its_class() {
    let cache = Recycling::new();
    unsafe {
        let first = cache.alloc(layout(100_000));
        fill(first, 100_000, 1);
        cache.dealloc(first, layout(100_000));
        let (_, rounded) = class(layout(100_000)).unwrap();
        assert_eq!(cache.cached_bytes(), rounded);
        // Another size of the same class.
        let second = cache.alloc(layout(rounded - 7));
        assert_eq!(second, first);
        assert_eq!(cache.cached_bytes(), 0);
        // A request of another class does not take it.
        cache.dealloc(second, layout(rounded - 7));
        let other = cache.alloc(layout(rounded * 2));
        assert_ne!(other, first);
        assert_eq!(cache.cached_bytes(), rounded);
        cache.dealloc(other, layout(rounded * 2));
        cache.release();
        assert_eq!(cache.cached_bytes(), 0);
    }
}

#[test]
fn the_budget_and_the_slots_bound_what_is_kept() {
    let cache = Recycling::new();
    let size = 40 << 10;
    let (_, rounded) = class(layout(size)).unwrap();
    unsafe {
        cache.set_budget(2 * rounded);
        let blocks: Vec<_> = (0..3).map(|_| cache.alloc(layout(size))).collect();
        for &block in &blocks {
            cache.dealloc(block, layout(size));
        }
        assert_eq!(cache.cached_bytes(), 2 * rounded);
        cache.set_budget(0);
        let taken = cache.alloc(layout(size));
        cache.dealloc(taken, layout(size));
        assert_eq!(
            cache.cached_bytes(),
            rounded,
            "a zero budget keeps nothing more"
        );
        cache.release();

        cache.set_budget(usize::MAX);
        let blocks: Vec<_> = (0..SLOTS + 3).map(|_| cache.alloc(layout(size))).collect();
        for &block in &blocks {
            cache.dealloc(block, layout(size));
        }
        assert_eq!(
            cache.cached_bytes(),
            SLOTS * rounded,
            "one class keeps {SLOTS} blocks"
        );
        cache.release();
        assert_eq!(cache.cached_bytes(), 0);
    }
}

#[test]
fn a_reused_block_is_zeroed_when_zeroes_are_asked_for() {
    let cache = Recycling::new();
    unsafe {
        let block = cache.alloc(layout(70_000));
        fill(block, 70_000, 9);
        cache.dealloc(block, layout(70_000));
        let zeroed = cache.alloc_zeroed(layout(70_000));
        assert_eq!(zeroed, block);
        assert!((0..70_000).all(|offset| zeroed.add(offset).read() == 0));
        cache.dealloc(zeroed, layout(70_000));
        cache.release();
    }
}

#[test]
fn realloc_keeps_the_contents_within_a_class_and_across_classes() {
    let cache = Recycling::new();
    unsafe {
        // Small (mimalloc's) → kept class → same class (in place) → larger class → over the
        // largest class (mimalloc's) → back down to small.
        let mut block = cache.alloc(layout(1000));
        fill(block, 1000, 3);
        let steps = [20_000, 20_400, 300_000, 9 << 20, 500];
        let mut size = 1000;
        for new_size in steps {
            let moved = cache.realloc(block, layout(size), new_size);
            assert!(!moved.is_null());
            let same_class = matches!(
                (class(layout(size)), class(layout(new_size))),
                (Some((a, _)), Some((b, _))) if a == b
            );
            if same_class {
                assert_eq!(moved, block, "{size} → {new_size} stays in place");
            }
            assert!(holds(moved, size.min(new_size), 3), "{size} → {new_size}");
            if new_size > size {
                fill(
                    moved.add(size),
                    new_size - size,
                    3u8.wrapping_add(size as u8),
                );
            }
            block = moved;
            size = new_size;
        }
        cache.dealloc(block, layout(size));
        cache.release();
    }
}

#[test]
fn threads_share_the_cache_without_losing_or_mixing_blocks() {
    let cache = Recycling::new();
    cache.set_budget(4 << 20);
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let cache = &cache;
            scope.spawn(move || {
                let mut held: Vec<(usize, usize, u8)> = Vec::new();
                let mut state = u64::from(thread) + 1;
                for round in 0..4000u32 {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let size = (16 << 10) + (state >> 33) as usize % (600 << 10);
                    let seed = (round as u8).wrapping_add(thread);
                    unsafe {
                        let block = cache.alloc(layout(size));
                        assert!(!block.is_null());
                        // Only the first and last bytes: whole fills make the test slow.
                        block.write(seed);
                        block.add(size - 1).write(seed);
                        held.push((block as usize, size, seed));
                        if held.len() > 6 || state % 3 == 0 {
                            let (block, size, seed) =
                                held.swap_remove((state >> 20) as usize % held.len());
                            let block = block as *mut u8;
                            assert_eq!(block.read(), seed, "a block changed hands while held");
                            assert_eq!(block.add(size - 1).read(), seed);
                            cache.dealloc(block, layout(size));
                        }
                    }
                }
                for (block, size, _) in held {
                    unsafe { cache.dealloc(block as *mut u8, layout(size)) };
                }
            });
        }
    });
    assert!(cache.cached_bytes() <= 4 << 20);
    cache.release();
    assert_eq!(cache.cached_bytes(), 0);
}
