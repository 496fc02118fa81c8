//! Measures how long N hollow nodes take to register (Ready, with a podCIDR) against an
//! in-process apiserver with the nodeipam controller, and the process's resident memory
//! before and after. `cargo run -p tug-hollow --example scale -- 5000 [steady-seconds]`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let steady: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let client = tug_apiserver::local::client(
        tug_apiserver::local::in_memory().await?,
        tug_apiserver::local::component_user("scale"),
    );
    // The default 10.42.0.0/16 holds 256 node blocks; thousands of nodes need a wider one.
    let ctx = tug_controllers::Context::new(
        client.clone(),
        tug_controllers::Options {
            cluster_cidr: "10.64.0.0/10".to_owned(),
            ..tug_controllers::Options::default()
        },
    );
    let ipam = tug_controllers::nodeipam::start(&ctx);
    ctx.informers.start();
    tokio::spawn(ipam);
    let before = rss_mib();
    let start = Instant::now();
    let options = tug_hollow::Options {
        count,
        ..tug_hollow::Options::default()
    };
    tokio::spawn(tug_hollow::run(client.clone(), options));
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = nodes.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
                    && n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        println!(
            "{:>6.1}s  {ready:>5}/{count} Ready with podCIDR  rss {:.0} MiB",
            start.elapsed().as_secs_f64(),
            rss_mib()
        );
        if ready >= count {
            break;
        }
    }
    let registered = start.elapsed();
    let after = rss_mib();
    println!("steady state for {steady}s (leases renewed every 10 s) ...");
    tokio::time::sleep(Duration::from_secs(steady)).await;
    println!(
        "{count} hollow nodes: registered in {:.1}s; rss {:.0} MiB before, {:.0} MiB registered, {:.0} MiB after {steady}s",
        registered.as_secs_f64(),
        before,
        after,
        rss_mib()
    );
    Ok(())
}
