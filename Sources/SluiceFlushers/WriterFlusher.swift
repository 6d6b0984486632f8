import SluiceCore

/// A flusher that writes JSON lines through a `ThreadedWriter` (flusher_file, flusher_stdout):
/// requests are encoded by the runner's task and written once each by the writer's thread.
public protocol WriterFlusher: Flusher where Request == WriteRequest {
    var writer: ThreadedWriter { get }
}

extension WriterFlusher {
    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> WriteRequest {
        writer.makeJSONLinesRequest(batches)
    }

    public func send(_ request: WriteRequest) async -> SendOutcome<WriteRequest> {
        await writer.send(request)
    }

    public func stop() async {
        await writer.finish()
    }
}
