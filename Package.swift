// swift-tools-version:6.0
import PackageDescription

// No package dependencies by design: Foundation plus system C libraries from Debian,
// each wrapped in one small system-library target.
let package = Package(
    name: "S3EncryptionGateway",
    products: [
        .executable(name: "s3-encryption-gateway", targets: ["Proxy"]),
        .executable(name: "encryption-gateway-operator", targets: ["Operator"]),
    ],
    targets: [
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Shared", dependencies: ["CCurl", "COpenSSL", "CLinux"], path: "Sources/Shared"),
        .executableTarget(name: "Proxy", dependencies: ["Shared", "CZlib"], path: "Sources/Proxy"),
        .executableTarget(name: "Operator", dependencies: ["Shared", "CYAML"], path: "Sources/Operator"),
        // Helpers every test target shares (moto, ports, temporary directories, seeded random, required tools).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SharedTests", dependencies: ["Shared", "TestSupport"], path: "Tests/SharedTests"),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Shared", "TestSupport"], path: "Tests/ProxyTests"),
        .testTarget(name: "OperatorTests", dependencies: ["Operator", "Shared", "TestSupport"], path: "Tests/OperatorTests"),
    ],
    swiftLanguageModes: [.v6]
)
