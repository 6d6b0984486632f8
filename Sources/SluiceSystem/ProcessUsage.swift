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

    /// Hands the heap's free pages back to the system (glibc `malloc_trim(0)`).
    public static func releaseFreeMemory() {
        _ = sluice_malloc_trim(0)
    }
}

@_silgen_name("malloc_trim")
private func sluice_malloc_trim(_ pad: Int) -> Int32
