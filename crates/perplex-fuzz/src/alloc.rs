//! A global allocator that refuses any single allocation over
//! [`MAX_ALLOCATION`], so that a reader sizing a buffer from a length field
//! aborts at once ("memory allocation of N bytes failed") instead of
//! reserving memory it never touches: the fuzz targets' and the replay
//! test's binaries install it, and libFuzzer reports the abort as a crash.
//! (Without a sanitizer libFuzzer only sees the resident size, which a
//! zeroed but untouched reservation does not grow.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation the fuzzed readers may make: far above
/// what any input of the fuzzers' `-max_len` justifies.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// [`System`], refusing allocations over [`MAX_ALLOCATION`] (a null pointer:
/// the standard library then aborts).
pub struct CappedAlloc;

// SAFETY: every call forwards to `System` with the caller's arguments, or
// returns null, which the `GlobalAlloc` contract allows for any request.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (only `System`
        // allocates here).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds
        // `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
