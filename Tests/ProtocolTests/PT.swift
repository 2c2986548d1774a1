import XCTest
@testable import Protocol
final class PT: XCTestCase { func testX() {} }
