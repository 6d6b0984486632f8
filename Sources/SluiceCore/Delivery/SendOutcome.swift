/// What one send of a request to a destination came to. A flusher classifies; the runner acts:
/// it finishes the request's batches, retries with backoff, or counts what was refused.
public enum SendOutcome<Request: Sendable>: Sendable {
    /// The destination has all of it.
    case delivered
    /// Nothing was taken but it may be later (network error, 429, 5xx, a full disk): send the same
    /// request again, after `after` if the destination said when (`Retry-After`), else after backoff.
    case retry(after: Duration?, reason: String)
    /// Refused for good (a 4xx, a document the destination cannot take): the request's events are
    /// counted as discarded with `reason` and its batches are finished as rejected.
    case rejected(reason: String)
    /// Some of it was taken: `retry` holds what is left to send (sent again after backoff),
    /// `rejected` events were refused for good (counted with `reason`).
    case partial(retry: Request, rejected: Int, reason: String)
}

/// A request could not be built from its batches (the flusher's encoder refused them): the
/// batches are rejected with this message.
public struct FlushError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}
