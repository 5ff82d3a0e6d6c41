//! The process's allocator: mimalloc, asked the way that is fast for it.
//!
//! The `mimalloc` crate hands every Rust allocation to
//! `mi_malloc_aligned`. For blocks over 1 KiB (buffers, boxed futures,
//! header tables) that takes mimalloc's generic aligned path, which
//! over-allocates and marks the page as holding interior pointers: about
//! a tenth of the instructions of a proxied request went there. Nearly
//! every Rust allocation asks for an alignment of 16 or less, which a
//! plain `mi_malloc` block already has (8 always; 16 for the sizes whose
//! blocks are multiples of 16), so that is tried first and checked.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as the global allocator (see the module's comment).
pub struct Allocator;

/// The alignment every mimalloc block has.
const BLOCK_ALIGN: usize = 8;
/// The alignment mimalloc can give from its plain path, if lucky.
const MAX_PLAIN_ALIGN: usize = 16;

fn aligned_to(p: *mut c_void, align: usize) -> bool {
    (p as usize) & (align - 1) == 0
}

/// `plain(size)` when its block has the layout's alignment (always for 8
/// or less; checked for 16), else `aligned(size, align)`.
///
/// # Safety
/// `plain` and `aligned` must be mimalloc's matching entry points: what
/// either returns is freed with `mi_free`.
#[inline]
unsafe fn plain_first(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if align <= MAX_PLAIN_ALIGN {
        // SAFETY: a plain allocation; the result is checked below.
        let p = unsafe { plain(size) };
        if align <= BLOCK_ALIGN || p.is_null() || aligned_to(p, align) {
            return p.cast();
        }
        // SAFETY: `p` came from `plain` just now.
        unsafe { mi::mi_free(p) };
    }
    // SAFETY: mimalloc's aligned allocation, for any power-of-two align.
    unsafe { aligned(size, align).cast() }
}

// SAFETY: every pointer handed out comes from mimalloc with at least the
// layout's size and alignment, and is given back to mimalloc's `mi_free`,
// which takes blocks from both its plain and aligned entry points.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned allocations, paired.
        unsafe { plain_first(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned zeroed allocations, paired.
        unsafe { plain_first(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, so by mimalloc.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if align <= BLOCK_ALIGN {
            // SAFETY: `ptr` is mimalloc's; every block is 8-aligned.
            return unsafe { mi::mi_realloc(ptr.cast(), new_size).cast() };
        }
        // SAFETY: `ptr` is mimalloc's; the aligned realloc keeps `align`.
        unsafe { mi::mi_realloc_aligned(ptr.cast(), new_size, align).cast() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_gets_its_alignment() {
        let a = Allocator;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 7, 8, 16, 24, 40, 48, 1000, 1100, 3000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a valid layout; freed with the same allocator.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xab, size);
                    let grown = a.realloc(p, layout, size * 2);
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "realloc size {size} align {align}"
                    );
                    assert_eq!(*grown, 0xab);
                    a.dealloc(grown, Layout::from_size_align(size * 2, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
