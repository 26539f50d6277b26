//! How the controller keeps its memory flat under glibc's malloc.
//!
//! A controller runs for months on a steady stream of small messages. glibc's malloc
//! gives each busy thread an arena of its own and hands little of the freed memory back,
//! so the resident size crept up for as long as the process ran although the live heap
//! did not (heap profile of the soak in BENCHMARKS.md: live heap +1 MB, RSS +3.5 MB).
//! Two measures: one arena for the whole process, and a thread that asks malloc once a
//! minute to return the free pages in the middle of its heap. Elsewhere (musl, other
//! systems) both are no-ops.

use std::time::Duration;

/// How often free heap pages go back to the system. A trim of the controller's heap
/// takes well under a millisecond (it holds the one arena's lock meanwhile).
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// One malloc arena, and a fixed mmap threshold: glibc otherwise raises the threshold
/// each time a large mapped block is freed, after which sled's 512 KB write buffers come
/// from the heap and pin it. Must run before any other thread exists: first thing in
/// `main`. 10 000 OCPP messages/s still take under half a core with it (BENCHMARKS.md).
/// (mimalloc and jemalloc were tried instead: more RSS, not less.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() {
    const ARENAS: libc::c_int = 1;
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets an allocator tunable; no other thread is running yet.
    let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
    // SAFETY: as above.
    let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if set != 1 || mmap != 1 {
        eprintln!("note: cannot tune malloc (arenas, mmap threshold); memory use may creep");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() {}

/// Starts the thread that returns free heap pages every [`TRIM_EVERY`]. It lives as long
/// as the process.
pub fn start_trimming() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            trim();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the malloc trim thread ({e}); memory use may creep");
    }
}

/// Returns the whole free pages of the heap to the system; live memory is untouched.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only releases memory malloc holds free; no pointer changes.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
