import SluiceCore
@testable import SluiceRuntime
import Testing

@Suite struct MonitoringServerTests {
    @Test func addresses() throws {
        #expect(try MonitoringServer.parse(address: "127.0.0.1:9188") == ("127.0.0.1", 9188))
        #expect(try MonitoringServer.parse(address: "0.0.0.0:0") == ("0.0.0.0", 0))
        #expect(try MonitoringServer.parse(address: "[::1]:9188") == ("::1", 9188))
        for bad in ["localhost", ":9188", "host:", "host:99999", "host:x"] {
            #expect(throws: MonitoringServer.AddressError.self) { try MonitoringServer.parse(address: bad) }
        }
    }

    @Test func gaugeKeysAndExposition() {
        let e = PrometheusExporter()
        let text = String(decoding: e.render([GaugeSample("files_open", [("pipeline", "a")], 3),
                                              GaugeSample("files_open", [("pipeline", "b")], 1)]), as: UTF8.self)
        #expect(text.contains("files_open{pipeline=\"a\"} 3.0"))
        #expect(text.contains("# HELP files_open "))
        #expect(text.contains("process_cpu_seconds_total"))
        // A series that is gone is dropped at the next scrape.
        let later = String(decoding: e.render([GaugeSample("files_open", [("pipeline", "b")], 2)]), as: UTF8.self)
        #expect(!later.contains("pipeline=\"a\""))
        #expect(later.contains("files_open{pipeline=\"b\"} 2.0"))
        #expect(GaugeSample("x", [("a", "1"), ("b", "2")], 0).key == "x{a=\"1\",b=\"2\"}")
    }
}
