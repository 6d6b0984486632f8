import NIOCore
import NIOHTTP1
import SluiceCore
import SluiceSystem

/// What an HTTP answer means for delivery, per protocol: 2xx delivered; the statuses a protocol
/// lists as transient (by default 408, 429 and every 5xx) retried, after `Retry-After` when the
/// server gave one; any other status rejected for good with the server's message; no answer at all
/// (refused, reset, timed out) retried.
public struct HTTPStatusPolicy: Sendable {
    /// Statuses retried besides 429 and 5xx.
    public var alsoRetried: Set<Int>

    public init(alsoRetried: Set<Int> = [408]) { self.alsoRetried = alsoRetried }

    public static let standard = HTTPStatusPolicy()

    public func isRetried(_ status: Int) -> Bool {
        status == 429 || (500...599).contains(status) || alsoRetried.contains(status)
    }

    /// The outcome of `exchange` for a request that is delivered or not as a whole.
    public func outcome<R>(_ exchange: HTTPExchange, now: Int64 = Sys.wallNanos()) -> SendOutcome<R> {
        switch exchange {
        case .failed(let message):
            return .retry(after: nil, reason: message)
        case .response(let status, let headers, let body):
            if (200...299).contains(status) { return .delivered }
            let reason = HTTPStatusPolicy.describe(status: status, body: body)
            if isRetried(status) {
                return .retry(after: HTTPStatusPolicy.retryAfter(headers, now: now), reason: reason)
            }
            return .rejected(reason: reason)
        }
    }

    /// `HTTP 400: <first 512 bytes of the body>`.
    public static func describe(status: Int, body: ByteBuffer) -> String {
        let text = String(decoding: body.readableBytesView.prefix(512), as: UTF8.self)
        return text.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(text)"
    }

    /// The delay a `Retry-After` header asks for: delta-seconds, or an HTTP-date (IMF-fixdate,
    /// `Wed, 21 Oct 2015 07:28:00 GMT`) taken against `now` (Unix ns). Nil when absent or unreadable.
    public static func retryAfter(_ headers: HTTPHeaders, now: Int64) -> Duration? {
        guard let v = headers.first(name: "Retry-After") else { return nil }
        let t = v.split(separator: " ", omittingEmptySubsequences: true)
        if t.count == 1, let s = Int(t[0]), s >= 0 { return .seconds(s) }
        // IMF-fixdate: day-name, DD Mon YYYY HH:MM:SS GMT
        guard t.count == 6, t[5] == "GMT", let day = Int(t[1]), let year = Int(t[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let mi = months.firstIndex(of: String(t[2])) else { return nil }
        let hms = t[4].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3 else { return nil }
        let secs = daysFromCivil(year, mi + 1, day) * 86400 + Int64(hms[0] * 3600 + hms[1] * 60 + hms[2])
        let delta = secs - now / 1_000_000_000
        return .seconds(max(0, delta))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = Int64(m <= 2 ? y0 - 1 : y0)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(m > 2 ? m - 3 : m + 9)
        let doy = (153 * mp + 2) / 5 + Int64(d) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
