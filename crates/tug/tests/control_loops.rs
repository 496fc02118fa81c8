//! End to end: the control loops of `tug server` (scheduler, controllers) over hollow nodes,
//! driven with a real kubectl as a user would — rollouts, undo, scaling, statefulsets,
//! daemonsets, jobs, cronjobs, cascading deletion, node failure, anti-affinity, preemption
//! and the reason an impossible pod waits.

mod common;

use common::{jsonpath, tug, wait_until, Kubectl, Process, Server};
use std::process::Stdio;

const KUBECTL: u32 = 33;

/// A server with `nodes` in-process hollow nodes.
fn cluster(nodes: usize, extra: &[&str]) -> (Server, Kubectl) {
    let n = nodes.to_string();
    let mut args = vec!["--hollow-nodes", n.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let k = Kubectl::new(&server, KUBECTL);
    wait_until(60, "the hollow nodes to be Ready", || {
        let out = k.run(&["get", "nodes", "--no-headers"]).1;
        out.lines().filter(|l| l.contains(" Ready")).count() == nodes
    });
    (server, k)
}

/// Names of the Running pods matching `selector`, with their nodes.
fn running_pods(k: &Kubectl, selector: &str) -> Vec<(String, String)> {
    let out = jsonpath(
        k,
        &["get", "pods", "-l", selector],
        r#"{range .items[?(@.status.phase=="Running")]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}"#,
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, node) = (f.next()?, f.next()?);
            // A third field is a deletionTimestamp: terminating pods do not count.
            f.next()
                .is_none()
                .then(|| (name.to_owned(), node.to_owned()))
        })
        .collect()
}

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
"#
    )
}

#[test]
fn a_deployment_rolls_out_undoes_and_scales() {
    let (_server, k) = cluster(2, &[]);
    k.ok_stdin(&["apply", "-f", "-"], &deployment("web", 3, "busybox:1"));
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(running_pods(&k, "app=web").len(), 3);

    k.ok(&["set", "image", "deployment/web", "main=busybox:2"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_until(30, "only busybox:2 pods", || {
        let images = jsonpath(
            &k,
            &["get", "pods", "-l", "app=web"],
            "{.items[*].spec.containers[0].image}",
        );
        images.split_whitespace().all(|i| i == "busybox:2")
    });
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    assert_eq!(
        k.ok(&["get", "rs", "-l", "app=web", "--no-headers"])
            .lines()
            .count(),
        2
    );

    k.ok(&["rollout", "undo", "deployment/web"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(
        jsonpath(
            &k,
            &["get", "deployment", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "busybox:1"
    );
    wait_until(30, "busybox:1 pods back", || {
        let images = jsonpath(
            &k,
            &["get", "pods", "-l", "app=web"],
            "{.items[*].spec.containers[0].image}",
        );
        !images.is_empty() && images.split_whitespace().all(|i| i == "busybox:1")
    });

    k.ok(&["scale", "deployment/web", "--replicas=5"]);
    wait_until(30, "5 running replicas", || {
        running_pods(&k, "app=web").len() == 5
    });
    k.ok(&["scale", "deployment/web", "--replicas=1"]);
    wait_until(30, "1 pod left", || {
        k.ok(&["get", "pods", "-l", "app=web", "--no-headers"])
            .lines()
            .count()
            == 1
    });
    let ready = jsonpath(&k, &["get", "deployment", "web"], "{.status.readyReplicas}");
    assert_eq!(ready, "1");
}

#[test]
fn a_statefulset_creates_its_pods_in_order() {
    let (_server, k) = cluster(2, &[]);
    let sts = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec:
      containers: [{name: main, image: busybox}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;
    k.ok_stdin(&["apply", "-f", "-"], sts);
    k.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let out = jsonpath(
        &k,
        &[
            "get",
            "pods",
            "-l",
            "app=sts",
            "--sort-by=.metadata.creationTimestamp",
        ],
        "{.items[*].metadata.name}",
    );
    assert_eq!(out, "web-0 web-1 web-2");
    // Each pod was created only after the one before it was Ready.
    let created: Vec<String> = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|p| jsonpath(&k, &["get", "pod", p], "{.metadata.creationTimestamp}"))
        .collect();
    let ready: Vec<String> = ["web-0", "web-1"]
        .iter()
        .map(|p| {
            jsonpath(
                &k,
                &["get", "pod", p],
                r#"{.status.conditions[?(@.type=="Ready")].lastTransitionTime}"#,
            )
        })
        .collect();
    assert!(
        ready[0] <= created[1] && ready[1] <= created[2],
        "{created:?} {ready:?}"
    );
    let pvcs = k.ok(&[
        "get",
        "pvc",
        "--no-headers",
        "-o",
        "custom-columns=N:.metadata.name",
    ]);
    assert_eq!(
        pvcs.split_whitespace().collect::<Vec<_>>(),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
}

#[test]
fn a_daemonset_runs_one_pod_per_node_but_not_on_a_tainted_one() {
    let (_server, k) = cluster(3, &[]);
    k.ok(&["taint", "node", "hollow-2", "dedicated=db:NoSchedule"]);
    let ds = r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: main, image: busybox}]
"#;
    k.ok_stdin(&["apply", "-f", "-"], ds);
    wait_until(60, "two daemon pods running", || {
        running_pods(&k, "app=agent").len() == 2
    });
    let mut nodes: Vec<String> = running_pods(&k, "app=agent")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["hollow-0", "hollow-1"]);
    wait_until(30, "daemonset status", || {
        jsonpath(
            &k,
            &["get", "ds", "agent"],
            "{.status.desiredNumberScheduled}/{.status.numberReady}",
        ) == "2/2"
    });
}

#[test]
fn a_job_completes_and_a_cronjob_fires() {
    let (_server, k) = cluster(2, &[]);
    let job = r#"apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
"#;
    k.ok_stdin(&["apply", "-f", "-"], job);
    k.ok(&[
        "wait",
        "--for=condition=Complete",
        "job/count",
        "--timeout=60s",
    ]);
    assert_eq!(
        jsonpath(&k, &["get", "job", "count"], "{.status.succeeded}"),
        "3"
    );
    let done = k.ok(&["get", "pods", "-l", "job-name=count", "--no-headers"]);
    assert_eq!(
        done.lines().filter(|l| l.contains("Completed")).count(),
        3,
        "{done}"
    );

    let cron = r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: main, image: busybox}]
"#;
    k.ok_stdin(&["apply", "-f", "-"], cron);
    // "* * * * *" fires at the next minute boundary.
    wait_until(75, "the cronjob to fire", || {
        !jsonpath(
            &k,
            &["get", "cronjob", "tick"],
            "{.status.lastScheduleTime}",
        )
        .is_empty()
    });
    wait_until(30, "its job to succeed", || {
        jsonpath(
            &k,
            &["get", "jobs"],
            "{.items[*].metadata.ownerReferences[0].name}",
        )
        .contains("tick")
            && jsonpath(
                &k,
                &["get", "jobs"],
                r#"{.items[?(@.metadata.ownerReferences[0].name=="tick")].status.succeeded}"#,
            )
            .contains('1')
    });
}

#[test]
fn deleting_a_deployment_cascades_unless_orphaned() {
    let (_server, k) = cluster(2, &[]);
    k.ok_stdin(&["apply", "-f", "-"], &deployment("gone", 2, "busybox"));
    k.ok_stdin(&["apply", "-f", "-"], &deployment("kept", 2, "busybox"));
    k.ok(&["rollout", "status", "deployment/gone", "--timeout=60s"]);
    k.ok(&["rollout", "status", "deployment/kept", "--timeout=60s"]);

    k.ok(&["delete", "deployment", "gone"]);
    wait_until(30, "gone's replicaset and pods deleted", || {
        k.ok(&["get", "rs,pods", "-l", "app=gone", "--no-headers"])
            .trim()
            .is_empty()
    });

    k.ok(&["delete", "deployment", "kept", "--cascade=orphan"]);
    wait_until(30, "the deployment gone", || {
        k.run(&["get", "deployment", "kept"]).2.contains("NotFound")
    });
    let rs = jsonpath(
        &k,
        &["get", "rs", "-l", "app=kept"],
        "{.items[*].metadata.ownerReferences}",
    );
    assert!(
        rs.is_empty() || rs == "[]",
        "orphaned replicaset still owned: {rs}"
    );
    assert_eq!(
        running_pods(&k, "app=kept").len(),
        2,
        "{}",
        k.ok(&["get", "rs,pods", "-o", "wide"])
    );
}

#[test]
fn anti_affinity_spreads_replicas() {
    let (_server, k) = cluster(3, &[]);
    let spread = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: main, image: busybox}]
"#;
    k.ok_stdin(&["apply", "-f", "-"], spread);
    k.ok(&["rollout", "status", "deployment/spread", "--timeout=60s"]);
    let mut nodes: Vec<String> = running_pods(&k, "app=spread")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["hollow-0", "hollow-1", "hollow-2"]);
    // A fourth replica has nowhere to go.
    k.ok(&["scale", "deployment/spread", "--replicas=4"]);
    wait_until(30, "the fourth pod pending with the reason", || {
        k.ok(&["describe", "pods", "-l", "app=spread"])
            .contains("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
    });
}

#[test]
fn an_impossible_pod_says_why_and_a_high_priority_pod_preempts() {
    let (_server, k) = cluster(2, &["--hollow-cpu", "1", "--hollow-memory", "4Gi"]);
    k.ok(&["taint", "node", "hollow-1", "dedicated=db:NoSchedule"]);
    let big = r#"apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers:
  - name: main
    image: busybox
    resources: {requests: {cpu: "8"}}
"#;
    k.ok_stdin(&["apply", "-f", "-"], big);
    wait_until(30, "the scheduler's reason in describe", || {
        let out = k.ok(&["describe", "pod", "huge"]);
        out.contains("FailedScheduling")
            && out.contains(
                "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}.",
            )
    });
    k.ok(&["delete", "pod", "huge", "--wait=false"]);

    let classes = r#"apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: v1
kind: Pod
metadata: {name: low}
spec:
  containers:
  - name: main
    image: busybox
    resources: {requests: {cpu: 800m}}
"#;
    k.ok_stdin(&["apply", "-f", "-"], classes);
    wait_until(30, "the low-priority pod running", || {
        jsonpath(&k, &["get", "pod", "low"], "{.status.phase}") == "Running"
    });
    let urgent = r#"apiVersion: v1
kind: Pod
metadata: {name: urgent}
spec:
  priorityClassName: high
  containers:
  - name: main
    image: busybox
    resources: {requests: {cpu: 800m}}
"#;
    k.ok_stdin(&["apply", "-f", "-"], urgent);
    wait_until(60, "the urgent pod running where low was", || {
        jsonpath(
            &k,
            &["get", "pod", "urgent"],
            "{.status.phase} {.spec.nodeName}",
        ) == "Running hollow-0"
    });
    assert!(k.run(&["get", "pod", "low"]).2.contains("NotFound"));
    assert_eq!(
        jsonpath(&k, &["get", "pod", "urgent"], "{.spec.priority}"),
        "1000"
    );
}

/// A `tug agent` with one hollow node named `<prefix>0`.
fn agent(server: &Server, prefix: &str) -> Process {
    let token = std::fs::read_to_string(server.data_dir().join("server/token"))
        .unwrap_or_else(|e| panic!("token: {e}"));
    let child = tug()
        .args([
            "agent",
            "--server",
            &format!("https://127.0.0.1:{}", server.port),
        ])
        .args([
            "--token",
            token.trim(),
            "--hollow-nodes",
            "1",
            "--hollow-node-prefix",
            prefix,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning tug agent: {e}"));
    Process(child)
}

#[test]
fn pods_of_a_node_that_stops_are_replaced_elsewhere() {
    let server = Server::start(&["--node-monitor-grace-period", "3s"]);
    let k = Kubectl::new(&server, KUBECTL);
    let first = agent(&server, "first-");
    wait_until(60, "first-0 Ready", || {
        k.run(&["get", "node", "first-0"]).1.contains(" Ready")
    });
    let dep = deployment("moving", 2, "busybox").replace(
        "      containers:",
        "      tolerations:\n      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 1}\n      containers:",
    );
    k.ok_stdin(&["apply", "-f", "-"], &dep);
    k.ok(&["rollout", "status", "deployment/moving", "--timeout=60s"]);
    assert!(running_pods(&k, "app=moving")
        .iter()
        .all(|(_, n)| n == "first-0"));

    let _second = agent(&server, "second-");
    wait_until(60, "second-0 Ready", || {
        k.run(&["get", "node", "second-0"]).1.contains(" Ready")
    });
    drop(first);
    wait_until(60, "first-0 NotReady and tainted", || {
        jsonpath(&k, &["get", "node", "first-0"], "{.spec.taints[*].key}")
            .contains("node.kubernetes.io/unreachable")
    });
    wait_until(60, "both replicas running on second-0", || {
        let pods = running_pods(&k, "app=moving");
        pods.iter().filter(|(_, n)| n == "second-0").count() == 2
    });
}

/// A `tug scheduler` process.
fn scheduler(server: &Server) -> Process {
    let child = tug()
        .args(["scheduler", "--kubeconfig"])
        .arg(server.kubeconfig())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning tug scheduler: {e}"));
    Process(child)
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: m, image: busybox}}]\n")
}

#[test]
fn a_standby_scheduler_takes_over_when_the_leader_dies() {
    let (server, k) = cluster(1, &["--disable-scheduler"]);
    let holder = || {
        jsonpath(
            &k,
            &["get", "lease", "-n", "kube-system", "kube-scheduler"],
            "{.spec.holderIdentity}",
        )
    };
    let mut first = Some(scheduler(&server));
    wait_until(30, "a scheduler to lead", || !holder().is_empty());
    let leader = holder();
    let _second = scheduler(&server);
    k.ok_stdin(&["apply", "-f", "-"], &pod("one"));
    wait_until(30, "pod one scheduled", || {
        jsonpath(&k, &["get", "pod", "one"], "{.spec.nodeName}") == "hollow-0"
    });
    // The standby is waiting: the lease still names the first.
    assert_eq!(holder(), leader);

    drop(first.take());
    k.ok_stdin(&["apply", "-f", "-"], &pod("two"));
    // Within the lease duration (15 s) plus a retry period the standby leads and schedules.
    wait_until(40, "pod two scheduled by the standby", || {
        jsonpath(&k, &["get", "pod", "two"], "{.spec.nodeName}") == "hollow-0"
    });
    let now = holder();
    assert!(!now.is_empty() && now != leader, "{leader} → {now}");
}
