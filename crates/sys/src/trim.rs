//! Give idle, long-lived processes (the pod supervisor, the pause process) a small resident
//! set: drop the pages of read-only segments they no longer touch, and the malloc arena and
//! stack pages they no longer use. Shared by `peapod` and `peapod-pause` through this crate;
//! it depends on std and libc only.

use std::io;

/// Unmap the resident pages of the read-only file mappings (text and rodata of the
/// executable and its shared libraries) that hold no private copy (`Anonymous: 0 kB` in
/// smaps), so a long-lived idle process keeps only what it touches again. The pages stay in
/// the page cache: touching them later is a minor fault. Segments with private (relocated)
/// pages, such as RELRO, are left alone, and so are the kernel's `[vdso]` and friends.
/// Returns the number of bytes released from this process's resident set.
pub fn release_text_pages() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    // (start, end, rss, anonymous) of each read-only file mapping.
    let mut found: Vec<(usize, usize, u64, u64)> = Vec::new();
    let mut ours = false;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or_default();
            let path = line.split_whitespace().nth(5).unwrap_or_default();
            ours = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
            if ours {
                found.push((start, end, 0, u64::MAX));
            }
            continue;
        }
        let kb = f
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024);
        if let (true, Some(m), Some(v)) = (ours, found.last_mut(), kb) {
            match first {
                "Rss:" => m.2 = v,
                "Anonymous:" => m.3 = v,
                _ => {}
            }
        }
    }
    found.retain(|m| m.3 == 0);
    drop(smaps);
    // Last, in a tight loop: code that runs after the madvise faults its pages back in.
    let mut released = 0;
    for &(start, end, rss, _) in &found {
        // SAFETY: [start, end) is a whole read-only, file-backed, private mapping (of our
        // executable or a shared library) with no anonymous (copied-on-write) pages: dropping its pages
        // only discards page-table entries that the kernel refills from the unchanged
        // file on the next access. No Rust object owns or aliases this memory mutably.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            released += rss;
        }
    }
    Ok(released)
}

/// Return free heap memory to the kernel (`malloc_trim`) and drop the stack pages below the
/// current frame (the stack grew deep while the sandbox was built; an idle loop is shallow).
pub fn release_free_memory() {
    // SAFETY: malloc_trim only releases memory that malloc holds as free.
    unsafe { libc::malloc_trim(0) };
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some((start, _)) = maps.lines().find_map(|l| {
        let range = l.split_whitespace().next()?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        );
        (l.ends_with("[stack]") && (a..b).contains(&sp)).then_some((a, b))
    }) else {
        return;
    };
    // Keep 16 KiB below this frame for the calls this function still makes (madvise).
    let end = (sp.saturating_sub(16 * 1024)) & !4095;
    if end > start {
        // SAFETY: [start, end) lies in our stack mapping more than 16 KiB below the current
        // frame; nothing lives there (the stack grows down and no frame reaches it now), so
        // its pages can be dropped and refilled with zeros when the stack grows again.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// What an idle process can give back: free heap and deep stack first, then the read-only
/// pages (last, since the code that runs after it faults its pages back in).
pub fn release_idle_memory() -> io::Result<u64> {
    release_free_memory();
    release_text_pages()
}
