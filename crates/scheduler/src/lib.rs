//! Tugboat's scheduler (not written yet).

/// Settings of the scheduler.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `spec.schedulerName` this scheduler serves.
    pub scheduler_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".to_owned(),
        }
    }
}

/// Schedules pods until the process ends.
pub async fn run(_client: kube::Client, _options: Options) {
    std::future::pending::<()>().await
}
