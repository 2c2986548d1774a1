// Micro-benchmarks of the wire protocol hot path: ClientParser on PUB, ServerEncoder.writeMessage.
//
//   BROKERD_BENCHMARKS=1 swift package --disable-sandbox benchmark --target ProtocolBenchmarks
//
// Every sample runs `scaledIterations` (1,000) operations. The metrics marked * in the table are shown per operation
// (rounded to an integer): wall clock in ns per op, throughput in ops/s (K or M as labelled), mallocs per op.
// The target is 0 mallocs per operation. Exact allocation counts (and their stacks):
//   BROKERD_BENCHMARKS=1 swift package --disable-sandbox benchmark run --allocation-stacks --target ProtocolBenchmarks

import Benchmark
import NIOCore
import Protocol

var configuration: Benchmark.Configuration {
    .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,  // 1,000 ops per sample: per-sample bookkeeping stays out of per-op figures
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )
}

/// `PUB FALCO.Critical <n>\r\n<n bytes>\r\n`, the bytes a client sends for one message.
func pubBytes(payloadSize: Int) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: 64 + payloadSize)
    buffer.writeString("PUB FALCO.Critical \(payloadSize)\r\n")
    buffer.writeRepeatingByte(UInt8(ascii: "x"), count: payloadSize)
    buffer.writeString("\r\n")
    return buffer
}

func payloadLabel(_ size: Int) -> String { size >= 1024 ? "\(size / 1024) KiB" : "\(size) B" }

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = configuration

    // MARK: ClientParser: one PUB (control line + payload) per iteration from a pre-filled buffer.
    for size in [16, 128, 1024] {
        Benchmark("ClientParser.next PUB \(payloadLabel(size))") { benchmark in
            var parser = ClientParser()
            var buffer = pubBytes(payloadSize: size)
            let start = buffer.readerIndex
            // Sanity check outside the measurement: the buffer holds exactly one complete PUB.
            guard case .pub(let publish)? = try? parser.next(&buffer), publish.payload.readableBytes == size,
                  buffer.readableBytes == 0
            else { fatalError("parser did not return the PUB") }
            buffer.moveReaderIndex(to: start)

            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                // Rewind instead of re-filling: what is measured is the parser only.
                buffer.moveReaderIndex(to: start)
                blackHole(try! parser.next(&buffer))
            }
            benchmark.stopMeasurement()
        }
    }

    // MARK: ServerEncoder: one MSG per iteration into a reused output buffer.
    for size in [16, 128, 1024] {
        Benchmark("ServerEncoder.writeMessage MSG \(payloadLabel(size))") { benchmark in
            let subject = ByteBuffer(string: "FALCO.Critical")
            let sid = ByteBuffer(string: "42")
            var payload = ByteBufferAllocator().buffer(capacity: size)
            payload.writeRepeatingByte(UInt8(ascii: "x"), count: size)
            var out = ByteBufferAllocator().buffer(capacity: 4096)

            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                out.clear()  // keeps the storage: `out` is its only owner
                ServerEncoder.writeMessage(
                    into: &out, subject: subject, sid: sid, reply: nil, headerLength: nil, payload: payload)
                blackHole(out.writerIndex)
            }
            benchmark.stopMeasurement()
            precondition(out.readableBytes == "MSG FALCO.Critical 42 \(size)\r\n".utf8.count + size + 2)
        }
    }
}
