//! The `consort` binary: parses arguments and hands over to the library.

// Ingest allocates a string per text cell on one thread and frees it on the database
// writer's; glibc's allocator serialises that on an arena lock, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // MPC rounds allocate and free buffers of tens of megabytes back to back. mimalloc's
    // default returns freed memory to the OS after 10 ms, so every round faulted it back
    // in page by page (half of a multiplication benchmark's time). Keep it for a second.
    // SAFETY: mi_option_set is not thread-safe; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    let code = consort_cli::main_with_args(std::env::args_os());
    std::process::exit(code);
}
