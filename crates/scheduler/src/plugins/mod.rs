//! The default plugins, one module per upstream plugin folder
//! (`pkg/scheduler/framework/plugins/<name>`), named and worded as upstream.

pub mod imagelocality;
pub mod interpodaffinity;
pub mod nodeaffinity;
pub mod nodename;
pub mod nodeports;
pub mod noderesources;
pub mod nodeunschedulable;
pub mod podtopologyspread;
pub mod tainttoleration;

#[cfg(test)]
pub(crate) mod testing;
