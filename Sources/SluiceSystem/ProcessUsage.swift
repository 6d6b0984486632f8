import Glibc

/// What this process uses now: resident memory, CPU time, open descriptors (for `/metrics`, the
/// stats file and the resource limits).
public enum ProcessUsage {
    /// Resident set size in bytes (`/proc/self/statm`, second field, in pages).
    public static func residentBytes() -> Int {
        guard case .success(let bytes) = Sys.readFile("/proc/self/statm", limit: 4096) else { return 0 }
        var field = 0
        var value = 0
        for b in bytes {
            if b == 0x20 {
                if field == 1 { break }
                field += 1
                value = 0
            } else if b >= 0x30 && b <= 0x39 {
                value = value * 10 + Int(b - 0x30)
            }
        }
        return field == 1 ? value * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    /// User plus system CPU time of the whole process, in seconds.
    public static func cpuSeconds() -> Double {
        var ru = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru) == 0 else { return 0 }
        return Double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + Double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1_000_000
    }

    /// Open file descriptors (`/proc/self/fd`, not counting the one that lists it).
    public static func openDescriptors() -> Int {
        guard case .success(let entries) = Sys.listDirectory("/proc/self/fd") else { return 0 }
        return max(0, entries.count - 1)
    }

    /// Sets glibc's allocator for a collector's large, short-lived buffers (read buffers and request
    /// bodies of 0.5–8 MiB, freed by another thread than the one that made them): they come from
    /// the heap up to 32 MiB instead of a fresh `mmap` each, whose every page the kernel faults in
    /// and clears as it is written and unmaps at `free`; and up to 64 MiB free at a heap's top is
    /// kept for the next ones instead of handed back at once. Measured on the http bench (given
    /// through glibc's environment variables, before the body pools kept enough): minor page faults
    /// per GiB of input from 100 k to 83 k. What is kept is handed back when
    /// memory nears `mem_usage_limit` (`releaseFreeMemory`). Called once, at start.
    public static func tuneAllocator() {
        _ = sluice_mallopt(-3, 32 << 20)   // M_MMAP_THRESHOLD
        _ = sluice_mallopt(-1, 64 << 20)   // M_TRIM_THRESHOLD
    }

    /// Hands the heap's free pages back to the system (glibc `malloc_trim(0)`).
    public static func releaseFreeMemory() {
        _ = sluice_malloc_trim(0)
    }
}

@_silgen_name("mallopt")
private func sluice_mallopt(_ param: Int32, _ value: Int32) -> Int32

@_silgen_name("malloc_trim")
private func sluice_malloc_trim(_ pad: Int) -> Int32
