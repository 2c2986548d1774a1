// libFuzzer target: the nats-server configuration format (Sources/NATSConfig), fed arbitrary bytes as a file's
// contents, plus the size and Go duration readers on the same text.
//
// Includes never leave a private temporary directory (`IncludePolicy.within`): it holds a few small files to
// include (one that includes itself, for cycles) and nothing else, so hostile text cannot read the real
// filesystem (`include /dev/zero`). Variables come from a fixed environment, cycles included.
// The goal is "no crash, no hang, no leak, no huge allocation": every input is parsed or rejected with an error.
import Foundation
import NATSConfig

private let includeDirectory: String = {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("brokerd-fuzz-includes")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let files = [
        "a.conf": "port: 4222\nauthorization { user: a, password: $PASS }\n",
        "b.conf": "include a.conf\nhttp: 8222\n",
        "self.conf": "include self.conf\n",
        "bad.conf": "port: \"unterminated\n",
        "nested/c.conf": "include ../b.conf\nlist: [1, 2, 3]\n",
    ]
    for (name, text) in files {
        let url = directory.appendingPathComponent(name)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? text.write(to: url, atomically: true, encoding: .utf8)
    }
    return directory.path
}()

private let environment = [
    "PASS": "s3cret", "PORT": "4222", "SIZE": "64MB", "MAP": "{ a: 1, b: [x, y] }",
    "LOOP": "$LOOP", "A": "$B", "B": "$A", "EMPTY": "",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSConfig(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? ConfigParser.parse(bytes: bytes, fileName: "fuzz.conf", baseDirectory: includeDirectory,
                                environment: environment, repeatableBlocks: ["bridge"],
                                includes: .within(includeDirectory))
    if count <= 64 {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = ConfigParser.parseSize(text)
        _ = GoDuration.parse(text)
    }
    return 0
}
