import Glibc

/// Delay before the next try of something that failed: exponential from `initial`, capped at
/// `maximum`, with jitter so that many retriers do not fire in step, and overridden by a delay
/// the other side asked for (`Retry-After`), capped at `maximumRequested`. Pure: the caller sleeps.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction of each delay that is randomised: the delay is drawn from
    /// `[d × (1 − jitter), d]`.
    public var jitter: Double
    /// The longest delay a destination may ask for (a `Retry-After` of hours is not honoured as is).
    public var maximumRequested: Duration

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(30), multiplier: Double = 2, jitter: Double = 0.2,
                maximumRequested: Duration = .seconds(300)) {
        self.initial = initial
        self.maximum = maximum
        self.maximumRequested = maximumRequested
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before try `attempt + 1`, after `attempt` (≥ 1) failures. `requested` is what the
    /// destination asked for; `unit` is a random draw in [0, 1). A request never shortens the
    /// backoff: a `Retry-After: 0`, or a date already past by our clock, would otherwise make
    /// every retry immediate, for as long as the destination answers so.
    public func delay(afterFailures attempt: Int, requested: Duration? = nil, unit: Double) -> Duration {
        let base = Backoff.seconds(initial) * Glibc.pow(multiplier, Double(max(0, attempt - 1)))
        let capped = min(base, Backoff.seconds(maximum))
        let computed = Duration.nanoseconds(Int64(capped * (1 - jitter * min(max(unit, 0), 1)) * 1e9))
        guard let r = requested else { return computed }
        return max(min(r, maximumRequested), computed)
    }

    /// `delay` with the system's random source.
    public func delay(afterFailures attempt: Int, requested: Duration? = nil) -> Duration {
        delay(afterFailures: attempt, requested: requested, unit: Double.random(in: 0..<1))
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
