import Foundation
import SluiceCore
import SluiceFlushers
import SluiceTesting
import Testing

/// TLS to a backend: a certificate signed by the configured CA is trusted; one the flusher cannot
/// verify is never sent to (retried, nothing acknowledged); skip-verify sends.
@Suite(.serialized) struct FlusherTLSTests {
    @Test func trustedCAIsDeliveredUnknownCAIsHeldBackSkipVerifySends() async throws {
        let tmp = TempDir("sluice-tls")
        defer { tmp.remove() }
        let certs = try #require(makeTestCertificates(in: tmp.path), "openssl made the test certificates")
        let r = try await HTTPTestReceiver(tls: (certs.cert, certs.key))
        defer { Task { await r.stop() } }
        let url = "https://127.0.0.1:\(r.port)/tls"

        let trusted = try makeFlusher(FlusherHttp.self, "RemoteURL: \(url)\nConvert: {Protocol: jsonline}\nAuthentication: {TLS: {CAFile: \(certs.ca)}}")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 50, per: 25)
        await drive(trusted, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(r.requests.flatMap { contents(ofLines: $0.bodyText) }.sorted() == lines.sorted())

        // The system's roots do not know this CA: the handshake fails, nothing is sent or acknowledged.
        let before = r.requestCount
        let unknown = try makeFlusher(FlusherHttp.self, "RemoteURL: \(url)\nConvert: {Protocol: jsonline}\nTimeout: 2s\nRetry: {InitialDelay: 50ms, MaxDelay: 100ms}")
        let tb2 = TestBatches()
        let (batches2, _) = numberedBatches(tb2, 10, per: 10)
        let ctx = await drive(unknown, batches2, cancelAfter: 1.5)
        #expect(tb2.statuses(of: 0) == [.abandoned], "a certificate that cannot be verified holds the data back")
        #expect(r.requestCount == before)
        #expect(ctx.metrics.errors.current > 0)

        let skip = try makeFlusher(FlusherHttp.self, "RemoteURL: \(url)\nConvert: {Protocol: jsonline}\nAuthentication: {TLS: {InsecureSkipVerify: true}}")
        let tb3 = TestBatches()
        let (batches3, _) = numberedBatches(tb3, 10, per: 10)
        await drive(skip, batches3)
        #expect(tb3.statuses(of: 0) == [.delivered])
    }
}
