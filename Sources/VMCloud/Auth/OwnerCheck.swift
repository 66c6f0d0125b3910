extension AppRequestContext {
    /// The caller may act on what `owner` made; otherwise `hidden` is thrown (a 404, so that
    /// another client's ids do not leak).
    func requireAccess(owner: Int64?, else hidden: @autoclosure () -> Error) throws {
        guard try requireClient().mayAccess(owner: owner) else { throw hidden() }
    }
}
