import XCTest
@testable import Broker
final class BT: XCTestCase { func testX() {} }
