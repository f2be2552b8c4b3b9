/// PLACEHOLDER until the EncryptionGateway reconciler exists: logs each key it is asked to reconcile and
/// reports success. It proves the runtime end to end (watch → queue → worker) without writing anything.
struct LoggingReconciler: Reconciler {
    let log: any RuntimeLog

    func reconcile(_ key: ObjectKey) -> ReconcileResult {
        log.info("reconcile", ["controller": "encryptiongateway", "key": key.description])
        return .done
    }
}
