//! Hollow nodes (not written yet).

/// Settings of a set of hollow nodes.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many nodes.
    pub count: usize,
    /// Node names are this prefix and an index.
    pub name_prefix: String,
}

/// Runs the hollow nodes until the process ends.
pub async fn run(_client: kube::Client, _options: Options) {
    std::future::pending::<()>().await
}
