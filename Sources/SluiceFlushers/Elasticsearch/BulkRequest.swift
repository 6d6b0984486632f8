import NIOCore
import SluiceCore

/// The items of one `_bulk` request: each is its action line and document, with a final newline,
/// kept in one byte store so that a retry of some items re-sends exactly their bytes (and their
/// `_id`s) without encoding them again.
public struct BulkRequest: FlushRequest {
    final class Store: Sendable {
        let bytes: ByteBuffer
        init(_ b: ByteBuffer) { bytes = b }
    }
    let store: Store
    /// Each item's bytes in the store.
    var items: [Range<Int>]
    /// Items per `_bulk` body; halved when the server answers 413.
    var itemsPerBody: Int
    /// Events with nothing to write (every field removed), counted with the request so they
    /// are counted sent once it is delivered; a retried part carries none.
    var emptyEvents = 0

    public var eventCount: Int { items.count + emptyEvents }
    public var byteCount: Int { items.reduce(0) { $0 + $1.count } }

    init(store: ByteBuffer, items: [Range<Int>], itemsPerBody: Int) {
        self.store = Store(store)
        self.items = items
        self.itemsPerBody = max(1, itemsPerBody)
    }

    func with(items: [Range<Int>], itemsPerBody: Int) -> BulkRequest {
        var r = self
        r.items = items
        r.itemsPerBody = max(1, itemsPerBody)
        r.emptyEvents = 0
        return r
    }

    /// The body of `items[range]`: a slice of the store (no copy) when they lie one after the
    /// other in it, as on a first send; else their bytes gathered into a new buffer.
    func body(_ range: Range<Int>) -> ByteBuffer {
        let total = items[range].reduce(0) { $0 + $1.count }
        if let first = items[range].first, let last = items[range].last, last.upperBound - first.lowerBound == total {
            return store.bytes.getSlice(at: store.bytes.readerIndex + first.lowerBound, length: total)!
        }
        var out = ByteBufferAllocator().buffer(capacity: total)
        for r in items[range] {
            out.writeImmutableBuffer(store.bytes.getSlice(at: store.bytes.readerIndex + r.lowerBound, length: r.count)!)
        }
        return out
    }
}
