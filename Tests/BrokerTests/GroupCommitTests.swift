import XCTest

@testable import Broker

final class GroupCommitTests: XCTestCase {
    private func answer(_ box: Box) -> PublishAnswer { .callback { box.acks.append($0) } }
    final class Box: @unchecked Sendable { var acks: [PubAck] = [] }

    func testOneSyncAnswersEveryAppendSinceTheLast() {
        var commit = GroupCommit()
        let box = Box()
        XCTAssertTrue(commit.appended(to: "A", ack: .stored(stream: "A", sequence: 1, duplicate: false), answer: answer(box)))
        XCTAssertFalse(commit.appended(to: "A", ack: .stored(stream: "A", sequence: 2, duplicate: false), answer: answer(box)),
                       "the sync is already scheduled")
        XCTAssertFalse(commit.appended(to: "B", ack: .stored(stream: "B", sequence: 1, duplicate: false), answer: nil),
                       "no answer wanted (a publish without reply), still synced")
        let batch = commit.synced(failed: [:])
        XCTAssertEqual(batch.answers.map(\.0), [.stored(stream: "A", sequence: 1, duplicate: false), .stored(stream: "A", sequence: 2, duplicate: false)])
        XCTAssertEqual(batch.streams, ["A", "B"])
        XCTAssertTrue(commit.appended(to: "A", ack: .stored(stream: "A", sequence: 3, duplicate: false), answer: nil),
                      "after a sync the next append schedules again")
    }

    func testAFailedSyncNeverAcknowledgesSuccess() {
        var commit = GroupCommit()
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 1, duplicate: false), answer: .callback { _ in })
        _ = commit.appended(to: "B", ack: .stored(stream: "B", sequence: 7, duplicate: false), answer: .callback { _ in })
        let batch = commit.synced(failed: ["A": "No space left on device"])
        XCTAssertEqual(batch.answers.map(\.0), [
            .failed(code: 503, errorCode: 10077, description: "storage failure: No space left on device"),
            .stored(stream: "B", sequence: 7, duplicate: false),
        ])
    }

    /// Messages taken back outside the commit (a failed sync on the tick) are never answered as stored, even if
    /// the commit's own sync then succeeds.
    func testATakeBackBeforeTheCommitFailsItsPubAcks() {
        var commit = GroupCommit()
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 5, duplicate: false), answer: .callback { _ in })
        commit.fail(stream: "A", reason: "fsync: Input/output error", lastKept: 4)
        commit.fail(stream: "B", reason: "nothing waits for B", lastKept: 0)
        let batch = commit.synced(failed: [:])
        XCTAssertEqual(batch.answers.map(\.0), [.failed(code: 503, errorCode: 10077, description: "storage failure: fsync: Input/output error")])
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 5, duplicate: false), answer: .callback { _ in })
        XCTAssertEqual(commit.synced(failed: [:]).answers.map(\.0), [.stored(stream: "A", sequence: 5, duplicate: false)], "once only")
    }

    /// A failed sync settles the stream's waiting PubAcks by what the store kept: a message an earlier sync made
    /// durable (a full block's seal) is answered as stored, also as a duplicate; one taken back gets 503.
    func testAFailedSyncAnswersWhatASealAlreadyMadeDurable() {
        var commit = GroupCommit()
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 9, duplicate: false), answer: .callback { _ in })
        _ = commit.appended(to: "B", ack: .stored(stream: "B", sequence: 3, duplicate: false), answer: .callback { _ in })
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 10, duplicate: false), answer: .callback { _ in })
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 9, duplicate: true), answer: .callback { _ in })
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 11, duplicate: false), answer: .callback { _ in })
        commit.fail(stream: "A", reason: "No space left on device", lastKept: 10)
        let failure = PubAck.failed(code: 503, errorCode: 10077, description: "storage failure: No space left on device")
        let batch = commit.synced(failed: ["A": "No space left on device"])
        XCTAssertEqual(batch.answers.map(\.0), [
            .stored(stream: "A", sequence: 9, duplicate: false), .stored(stream: "A", sequence: 10, duplicate: false),
            .stored(stream: "A", sequence: 9, duplicate: true), failure, .stored(stream: "B", sequence: 3, duplicate: false),
        ])
    }

    func testCallbacksGetTheirAnswers() {
        var commit = GroupCommit()
        let box = Box()
        _ = commit.appended(to: "A", ack: .stored(stream: "A", sequence: 1, duplicate: false), answer: answer(box))
        PublishAnswer.send(commit.synced(failed: [:]).answers)
        XCTAssertEqual(box.acks, [.stored(stream: "A", sequence: 1, duplicate: false)])
    }
}
