import Glibc
import SluiceSystem
import Synchronization

/// A token bucket shared by all inputs (`max_bytes_per_sec`). Inputs call `acquire` from their
/// own threads after a read; it sleeps the thread when the budget is spent, so the data waits in
/// the source files rather than in memory.
public final class RateLimiter: Sendable {
    public let bytesPerSecond: Int
    private let state: Mutex<(tokens: Double, last: Int64)>

    public init(bytesPerSecond: Int) {
        precondition(bytesPerSecond > 0)
        self.bytesPerSecond = bytesPerSecond
        state = Mutex((Double(bytesPerSecond), RateLimiter.now()))
    }

    static func now() -> Int64 { Sys.monotonicNanos() }

    /// Takes `bytes` from the bucket, sleeping as long as needed (in slices of at most 100 ms, so
    /// `shouldStop` is honoured).
    public func acquire(_ bytes: Int, shouldStop: () -> Bool = { false }) {
        let rate = Double(bytesPerSecond)
        let waitNs: Int64 = state.withLock { s in
            let t = RateLimiter.now()
            s.tokens = min(rate, s.tokens + Double(t - s.last) / 1e9 * rate)
            s.last = t
            s.tokens -= Double(bytes)
            return s.tokens >= 0 ? 0 : Int64(-s.tokens / rate * 1e9)
        }
        var left = waitNs
        while left > 0 && !shouldStop() {
            let slice = min(left, 100_000_000)
            usleep(useconds_t(slice / 1000))
            left -= slice
        }
    }
}
