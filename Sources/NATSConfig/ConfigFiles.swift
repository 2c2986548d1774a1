import Foundation

// Reading config files and resolving include paths.

extension ConfigParser {
    // MARK: Files

    struct ReadProblem: Error { var reason: String }

    static func readFile(_ path: String) -> Result<[UInt8], ReadProblem> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return .failure(ReadProblem(reason: "no such file"))
        }
        if isDirectory.boolValue { return .failure(ReadProblem(reason: "it is a directory")) }
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(ReadProblem(reason: "permission denied or unreadable"))
        }
        return .success([UInt8](data))
    }

    static func directory(of path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }

    /// Joins like filepath.Join, but keeps the result short when the base is the current directory.
    static func join(_ directory: String, _ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if directory.isEmpty || directory == "." { return path }
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }

    static func canonicalPath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
