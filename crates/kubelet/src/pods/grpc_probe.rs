//! The gRPC probe: `grpc.health.v1.Health/Check` over plaintext HTTP/2 to the pod, as
//! upstream's kubelet does; the probe's `service` goes in the request and only SERVING
//! passes. Failure messages follow upstream's wording.

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Checks `service` ("" for the server as a whole) at `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let connect_failed = |e: &dyn std::fmt::Display| {
        format!(
            "timeout: failed to connect service {addr:?} within {}s: {e}",
            timeout.as_secs()
        )
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| connect_failed(&e))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(connect_failed(&e)),
        Err(_) => return Err(connect_failed(&"context deadline exceeded")),
    };
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await;
    let status = match answer {
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            ))
        }
        Ok(Err(s)) if s.code() == Code::Unimplemented => {
            return Err(format!(
                "this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                s.message()
            ))
        }
        Ok(Err(s)) if s.code() == Code::DeadlineExceeded => {
            return Err(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            ))
        }
        Ok(Err(s)) => return Err(format!("error: health rpc probe failed: {s}")),
        Ok(Ok(r)) => r.into_inner().status,
    };
    if status == ServingStatus::Serving as i32 {
        return Ok(());
    }
    let name = ServingStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
    Err(format!("service unhealthy (responded with {name:?})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::ServingStatus as Status;

    /// A health server on a free loopback port; `app` serving, `down` not.
    async fn server() -> u16 {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("app", Status::Serving).await;
        reporter
            .set_service_status("down", Status::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"))
            .port();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            let _keep = reporter;
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        port
    }

    #[tokio::test]
    async fn serving_passes_and_anything_else_fails_with_upstreams_words() {
        let port = server().await;
        let t = Duration::from_secs(2);
        assert_eq!(check("127.0.0.1", port, "app", t).await, Ok(()));
        assert_eq!(check("127.0.0.1", port, "", t).await, Ok(()));
        assert_eq!(
            check("127.0.0.1", port, "down", t).await,
            Err(r#"service unhealthy (responded with "NOT_SERVING")"#.to_owned())
        );
        let unknown = check("127.0.0.1", port, "nope", t).await.unwrap_err();
        assert!(
            unknown.starts_with("error: health rpc probe failed"),
            "{unknown}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_fails_to_connect() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let e = check("127.0.0.1", free, "", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "timeout: failed to connect service \"127.0.0.1:{free}\" within 1s"
            )),
            "{e}"
        );
    }
}
