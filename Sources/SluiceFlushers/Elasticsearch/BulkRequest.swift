import NIOCore
import SluiceCore

/// The items of one `_bulk` request: each is its action line and document, with a final newline,
/// kept in one byte store so that a retry of some items re-sends exactly their bytes (and their
/// `_id`s) without encoding them again.
public struct BulkRequest: FlushRequest {
    final class Store: Sendable {
        let bytes: [UInt8]
        init(_ b: [UInt8]) { bytes = b }
    }
    let store: Store
    /// Each item's bytes in the store.
    var items: [Range<Int>]
    /// Items per `_bulk` body; halved when the server answers 413.
    var itemsPerBody: Int

    public var eventCount: Int { items.count }
    public var byteCount: Int { items.reduce(0) { $0 + $1.count } }

    init(store: [UInt8], items: [Range<Int>], itemsPerBody: Int) {
        self.store = Store(store)
        self.items = items
        self.itemsPerBody = max(1, itemsPerBody)
    }

    func with(items: [Range<Int>], itemsPerBody: Int) -> BulkRequest {
        var r = self
        r.items = items
        r.itemsPerBody = max(1, itemsPerBody)
        return r
    }

    /// The body of `items[range]`.
    func body(_ range: Range<Int>) -> [UInt8] {
        if let first = items[range].first, let last = items[range].last, last.upperBound - first.lowerBound == items[range].reduce(0, { $0 + $1.count }) {
            // The items lie one after the other in the store (a first send): one slice.
            return Array(store.bytes[first.lowerBound..<last.upperBound])
        }
        var out: [UInt8] = []
        out.reserveCapacity(items[range].reduce(0) { $0 + $1.count })
        for r in items[range] { out.append(contentsOf: store.bytes[r]) }
        return out
    }
}
