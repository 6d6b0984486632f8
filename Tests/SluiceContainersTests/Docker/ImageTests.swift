// The container image (scripts/build-image.sh) built and run on a REAL dockerd (DockerHarness,
// root only) the way a DaemonSet runs it: host / mounted read-only at /logtail_host, the docker
// socket mounted, host network, DOCKER_HOST set. Another container prints known lines; they must
// come out once each with their container's metadata, through the image's default pipeline (JSON
// lines on the collector's stdout, read with `docker logs`) and through a mounted pipeline
// (container label filter → flusher_file into a host directory).
//
// The image is made of the debug binary the tests already use (SluiceProcess.binaryPath) to keep
// CI's time; SLUICE_IMAGE_BINARY=path uses another one, e.g. a release build with
// --static-swift-stdlib.
import Glibc
import Foundation
import Testing
import SluiceTesting

/// The package root: this file is Tests/SluiceContainersTests/Docker/ImageTests.swift.
private func imgRepoRoot(_ file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.path
}

/// The JSON objects among `text`'s lines (other lines: the collector's own log on stderr).
private func imgEvents(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap { line in
        guard line.hasPrefix("{") else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }
}

@Suite("Container image: built and run on a real dockerd", .serialized, .enabled(if: dkIsRoot, "needs root to start a private dockerd"))
struct ImageTests {
    @Test func imageCollectsAnotherContainersStdoutWithMetadata() async throws {
        let h = DockerHarness(tag: "image")
        do {
            try await h.start()
            try await run(h)
        } catch {
            let log = (try? String(contentsOfFile: h.dir + "/dockerd.log", encoding: .utf8)) ?? ""
            dkSay("ImageTests: failed: \(error)\n--- dockerd.log (tail) ---\n\(log.suffix(2000))")
            await h.cleanup()
            throw error
        }
        await h.cleanup()
    }

    private func run(_ h: DockerHarness) async throws {
        let n = Int(getpid())
        let tag = "sluice-test:\(n)"
        let binary = ProcessInfo.processInfo.environment["SLUICE_IMAGE_BINARY"].flatMap { $0.isEmpty ? nil : $0 } ?? SluiceProcess.binaryPath
        let binaryBytes = fileSize(binary)

        // Build.
        let t0 = monotonicSeconds()
        let build = try await dkRun(["/bin/bash", imgRepoRoot() + "/scripts/build-image.sh", "--binary", binary,
                                     "--tag", tag, "--docker-host", h.dockerHost], timeout: 600)
        #expect(build.status == 0, "build-image.sh: \(build.output)")
        guard build.status == 0 else { return }
        let size = try #require(Int(try await h.dockerOK(["image", "inspect", "-f", "{{.Size}}", tag])))
        print("sluice image \(tag) from \(binary) (\(binaryBytes / 1_048_576) MiB binary): \(size) bytes (\(size / 1_048_576) MiB), built in \(dkFormat(monotonicSeconds() - t0)) s on \(h.storageDriver)")
        let config = try await h.dockerOK(["image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.Labels}}", tag])
        #expect(config.contains(#"["/usr/bin/sluice"]"#), "entrypoint: \(config)")
        #expect(config.contains(#"["run","--config-dir","/etc/sluice/pipelines","--data-dir","/var/lib/sluice"]"#), "cmd: \(config)")
        #expect(config.contains(#""io.sluice.collector":"true""#), "label: \(config)")
        #expect(size < binaryBytes + 150 * 1_048_576, "the image is the stripped binary and its libraries, not more")

        // A mounted pipeline next to the image's default one: the labelled containers into a host file.
        let conf = h.dir + "/conf"
        let out = h.dir + "/out"
        makeDirectories(conf)
        makeDirectories(out)
        try """
        inputs:
          - Type: input_container_stdio
            ContainerFilters:
              IncludeContainerLabel:
                sluice-image-test: "\(n)"
        flushers:
          - Type: flusher_file
            FilePath: /out/labelled.jsonl
        """.write(toFile: conf + "/labelled.yaml", atomically: true, encoding: .utf8)

        // Run it as the DaemonSet does.
        let collector = "sluice-img-\(n)"
        try await h.dockerOK([
            "run", "-d", "--name", collector, "--network", "host",
            "-v", "/:/logtail_host:ro", "-v", "\(h.socketPath):/var/run/docker.sock",
            "-e", "DOCKER_HOST=unix:///var/run/docker.sock",
            "-v", "\(conf)/labelled.yaml:/etc/sluice/pipelines/labelled.yaml:ro", "-v", "\(out):/out",
            tag,
        ])
        let connected = await eventually(60, pollMs: 200) {
            let logs = (try? await h.docker(["logs", collector]))?.output ?? ""
            return logs.contains("Docker connected") && logs.contains("pipeline=labelled")
        }
        let startLogs = try await h.docker(["logs", collector]).output
        let state = try await h.dockerOK(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", collector])
        #expect(connected, "the collector reaches dockerd through the mounted socket and starts both pipelines (state \(state)):\n\(startLogs.suffix(3000))")
        guard connected else { return }

        // Another container prints `lines` known lines; one without the label prints a few more.
        let lines = 300
        let printer = "img-printer-\(n)"
        let printerID = try await h.dockerOK([
            "run", "-d", "--name", printer, "--network", "none", "-l", "sluice-image-test=\(n)", DockerHarness.imageName,
            "sh", "-c", "for i in $(seq 1 \(lines)); do echo \"image-test \(n) line $i\"; done",
        ])
        let other = "img-other-\(n)"
        let otherID = try await h.dockerOK([
            "run", "-d", "--name", other, "--network", "none", DockerHarness.imageName,
            "sh", "-c", "for i in 1 2 3; do echo \"image-test \(n) other $i\"; done",
        ])
        let expected = (1...lines).map { "image-test \(n) line \($0)" }
        let outFile = out + "/labelled.jsonl"
        func fileEvents() -> [[String: Any]] { imgEvents((try? String(contentsOfFile: outFile, encoding: .utf8)) ?? "") }
        func stdoutEvents() async -> [[String: Any]] { imgEvents((try? await h.docker(["logs", collector]))?.output ?? "") }
        func printed(_ events: [[String: Any]]) -> [[String: Any]] {
            events.filter { ($0["content"] as? String)?.hasPrefix("image-test \(n) line ") == true }
        }
        let arrived = await eventually(60, pollMs: 250) {
            let s = await stdoutEvents()
            return printed(fileEvents()).count >= lines && printed(s).count >= lines
                && s.contains { $0["content"] as? String == "image-test \(n) other 3" }
        }
        let viaStdout = await stdoutEvents()
        let viaFile = fileEvents()
        #expect(arrived, "all \(lines) lines in both outputs within 60 s: stdout \(printed(viaStdout).count), file \(printed(viaFile).count)")

        for (name, events) in [("default pipeline (stdout)", viaStdout), ("mounted pipeline (flusher_file)", viaFile)] {
            let mine = printed(events)
            let report = deliveryReport(expected: expected, delivered: mine.compactMap { $0["content"] as? String })
            #expect(report.ok, "\(name): \(report)")
            for e in mine {
                #expect(e["_container_name_"] as? String == printer, "\(name): \(e)")
                #expect(e["_container_id_"] as? String == printerID, "\(name): \(e)")
                #expect(e["_image_name_"] as? String == DockerHarness.imageName, "\(name): \(e)")
                #expect(e["_source_"] as? String == "stdout", "\(name): \(e)")
                #expect((e["__time__"] as? Int ?? 0) > 1_600_000_000, "\(name): \(e)")
            }
            // The collector never reads its own output (the default pipeline leaves out its image's label).
            #expect(!events.contains { $0["_container_name_"] as? String == collector }, "\(name): the collector collected itself")
        }
        #expect(viaStdout.filter { $0["_container_id_"] as? String == otherID }.count == 3, "the unlabelled container is in the default pipeline")
        #expect(!viaFile.contains { $0["_container_id_"] as? String == otherID }, "the label filter of the mounted pipeline leaves it out")
        print("sluice image collected \(printed(viaStdout).count) lines on stdout and \(printed(viaFile).count) into the mounted flusher_file, with container name, id and image")

        // docker stop: SIGTERM, the collector drains and exits 0.
        try await h.dockerOK(["stop", "-t", "20", collector])
        let exit = try await h.dockerOK(["inspect", "-f", "{{.State.ExitCode}}", collector])
        #expect(exit == "0", "exit code after docker stop: \(exit)")

        try await h.dockerOK(["rm", "-f", collector, printer, other])
        try await h.dockerOK(["rmi", tag])
    }
}
