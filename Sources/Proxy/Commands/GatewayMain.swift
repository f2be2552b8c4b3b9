import Shared

/// Entry point of `s3-encryption-gateway`.
@main
struct GatewayMain {
    static func main() {
        print("s3-encryption-gateway: not wired yet")
    }
}
