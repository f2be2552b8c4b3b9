import Shared

/// Entry point of `encryption-gateway-operator`.
@main
struct OperatorMain {
    static func main() {
        print("usage: encryption-gateway-operator [--kubeconfig PATH] [--health-probe-bind-address ADDR] [--metrics-bind-address ADDR]")
    }
}
