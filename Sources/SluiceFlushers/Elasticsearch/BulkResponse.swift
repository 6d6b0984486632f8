import FoundationEssentials
import NIOCore

/// The part of a `_bulk` answer that decides each item's fate: `errors`, and per item its status
/// and error (in request order).
struct BulkResponse: Decodable {
    struct ItemResult: Decodable {
        var status: Int
        var error: ItemError?
    }
    /// An item's error: an object with `type` and `reason` (Elasticsearch, OpenSearch) or a string.
    struct ItemError: Decodable, CustomStringConvertible {
        var text: String
        struct Detail: Decodable { var type: String?; var reason: String? }
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                text = s
            } else {
                let d = try c.decode(Detail.self)
                text = [d.type, d.reason].compactMap { $0 }.joined(separator: ": ")
            }
        }
        var description: String { text }
    }
    var errors: Bool
    /// Each item is `{"<action>": {...}}`.
    var items: [[String: ItemResult]]?

    /// Whether the answer says no item failed, read without decoding the whole body.
    static func hasNoErrors(_ body: ByteBuffer) -> Bool {
        // `"errors":false` comes first in every server's answer; look only at the start.
        let head = body.readableBytesView.prefix(256)
        return head.firstRange(of: Array("\"errors\":false".utf8)) != nil
    }

    static func decode(_ body: ByteBuffer) throws -> BulkResponse {
        try JSONDecoder().decode(BulkResponse.self, from: Data(body.readableBytesView))
    }
}
