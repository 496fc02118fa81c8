//! DefaultPreemption, the PostFilter plugin: for a pod that fits nowhere, find nodes where
//! removing lower-priority pods lets it fit (reprieving as many as possible, pods whose
//! eviction would violate a PodDisruptionBudget first), pick one node upstream's way (fewest
//! PDB violations, lowest highest-victim priority, smallest priority sum, fewest victims,
//! latest start), delete the victims (with a DisruptionTarget condition and a "Preempted"
//! event) and nominate the node. The pod is scheduled there once the victims are gone.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;
use tug_runtime::events::EventType;

use crate::framework::{Code, Ctx, CycleState, Diagnosis, FitError, Framework, Status};
use crate::labels::Selector;
use crate::node_info::{NodeInfo, PodInfo};
use crate::scheduler::{filter_with_nominated, Nominator, Shared};

/// What PostFilter decided.
pub struct Outcome {
    /// The PostFilter message for the FitError ("" on success).
    pub message: String,
    /// `Some(node)`: set nominatedNodeName (empty: clear it); `None`: leave it.
    pub nominate: Option<String>,
}

/// A node where preemption would work.
#[derive(Debug)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// Pods to evict, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// How many victims' eviction violates a PDB.
    pub pdb_violations: usize,
}

/// Whether the pod may preempt at all; the reason when not.
pub fn eligible(pod: &PodInfo, ctx: &Ctx<'_>, diagnosis: &Diagnosis) -> Result<(), &'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    if nominated.is_empty() {
        return Ok(());
    }
    let Some(&idx) = ctx.snapshot.index.get(nominated) else {
        return Ok(());
    };
    let unresolvable = diagnosis
        .node_to_status
        .iter()
        .any(|(i, s)| *i == idx && s.code == Code::UnschedulableAndUnresolvable);
    if unresolvable {
        return Ok(());
    }
    let node = &ctx.snapshot.nodes[idx];
    if node
        .pods
        .iter()
        .any(|p| p.terminating && p.priority < pod.priority)
    {
        return Err("not eligible due to a terminating pod on the nominated node.");
    }
    Ok(())
}

/// Splits pods (most important first) into those whose eviction would violate a PDB and
/// those whose would not, counting down each PDB's disruptionsAllowed as it goes.
pub fn split_by_pdb(
    pods: &[Arc<PodInfo>],
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i64> = pdbs
        .iter()
        .map(|p| {
            p.status
                .as_ref()
                .map_or(0, |s| i64::from(s.disruptions_allowed.unwrap_or(0)))
        })
        .collect();
    let selectors: Vec<Selector> = pdbs
        .iter()
        .map(|p| Selector::from_label_selector(p.spec.as_ref().and_then(|s| s.selector.as_ref())))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violates = false;
        if pod.labels().is_some_and(|l| !l.is_empty()) {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace.as_deref() != Some(pod.namespace.as_str()) {
                    continue;
                }
                // A PDB with an empty selector matches nothing.
                if selectors[i].is_everything() || !selectors[i].matches_opt(pod.labels()) {
                    continue;
                }
                let disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(&pod.key.name));
                if disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violates = true;
                }
            }
        }
        if violates {
            violating.push(pod.clone());
        } else {
            fine.push(pod.clone());
        }
    }
    (violating, fine)
}

fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.start_time().cmp(&b.start_time()))
}

/// The fewest pods to evict from `node` so that `pod` fits, or why none do.
pub fn select_victims(
    fw: &Framework,
    nominator: &Nominator,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let mut state = state.clone();
    let mut node = node.clone();
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    for p in &potential {
        node.remove_pod(&p.key);
        fw.run_remove_pod(&mut state, pod, p, &node);
    }
    if potential.is_empty() {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            "No preemption victims found for incoming pod",
        ));
    }
    let st = filter_with_nominated(fw, nominator, &state, pod, &node);
    if !st.is_success() {
        return Err(st);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, fine) = split_by_pdb(&potential, pdbs);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (group, counts) in [(violating, true), (fine, false)] {
        for p in group {
            node.add_pod(p.clone());
            fw.run_add_pod(&mut state, pod, &p, &node);
            if !filter_with_nominated(fw, nominator, &state, pod, &node).is_success() {
                node.remove_pod(&p.key);
                fw.run_remove_pod(&mut state, pod, &p, &node);
                if counts {
                    violations += 1;
                }
                victims.push(p);
            }
        }
    }
    victims.sort_by(|a, b| more_important(a, b));
    Ok((victims, violations))
}

/// Picks the candidate as upstream's `pickOneNodeForPreemption`.
pub fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    let highest = |c: &Candidate| c.victims.first().map_or(i32::MIN, |p| p.priority);
    let sum = |c: &Candidate| -> i64 {
        c.victims
            .iter()
            .map(|p| i64::from(p.priority) + i64::from(i32::MAX) + 1)
            .sum()
    };
    let earliest_of_highest = |c: &Candidate| -> i64 {
        let h = highest(c);
        c.victims
            .iter()
            .filter(|p| p.priority == h)
            .map(|p| p.start_time())
            .min()
            .unwrap_or(i64::MAX)
    };
    candidates.iter().min_by(|a, b| {
        a.pdb_violations
            .cmp(&b.pdb_violations)
            .then_with(|| highest(a).cmp(&highest(b)))
            .then_with(|| sum(a).cmp(&sum(b)))
            .then_with(|| a.victims.len().cmp(&b.victims.len()))
            .then_with(|| earliest_of_highest(b).cmp(&earliest_of_highest(a)))
    })
}

/// Runs DefaultPreemption for a pod that fits nowhere.
pub fn post_filter(
    shared: &Arc<Shared>,
    ctx: &Ctx<'_>,
    state: &mut CycleState,
    pod: &Arc<PodInfo>,
    diagnosis: &Diagnosis,
    random: u64,
) -> Outcome {
    if let Err(msg) = eligible(pod, ctx, diagnosis) {
        return Outcome {
            message: format!("preemption: {msg}"),
            nominate: None,
        };
    }
    let snap = ctx.snapshot;
    let potential: Vec<usize> = diagnosis
        .node_to_status
        .iter()
        .filter(|(_, s)| s.code == Code::Unschedulable)
        .map(|(i, _)| *i)
        .collect();
    let mut statuses = Vec::new();
    let mut candidates = Vec::new();
    if !potential.is_empty() {
        let pdbs = shared.pdbs.list();
        let n = potential.len();
        let want = (n * 10 / 100).max(100).min(n);
        let offset = (random % n as u64) as usize;
        let nominator = shared.nominator();
        let (mut fine, mut violating) = (0usize, 0usize);
        for i in 0..n {
            let idx = potential[(offset + i) % n];
            let node = &snap.nodes[idx];
            match select_victims(&shared.framework, &nominator, state, pod, node, &pdbs) {
                Ok((victims, v)) if !victims.is_empty() => {
                    if v == 0 {
                        fine += 1;
                    } else {
                        violating += 1;
                    }
                    candidates.push(Candidate {
                        node: node.name.clone(),
                        victims,
                        pdb_violations: v,
                    });
                    if fine > 0 && fine + violating >= want {
                        break;
                    }
                }
                Ok(_) => statuses.push((
                    idx,
                    Status::new(
                        Code::Error,
                        format!("expected at least one victim pod on node {:?}", node.name),
                    ),
                )),
                Err(s) => statuses.push((idx, s)),
            }
        }
    }
    let Some(best) = pick_one(&candidates) else {
        let fit = FitError {
            num_all_nodes: snap.nodes.len(),
            diagnosis: Diagnosis {
                node_to_status: statuses,
                absent_status: Some(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    "Preemption is not helpful for scheduling",
                )),
                ..Default::default()
            },
        };
        return Outcome {
            message: format!("preemption: {fit}"),
            nominate: Some(String::new()),
        };
    };
    // Lower-priority pods nominated to this node lose their nomination.
    let lower = shared.nominator().lower_on_node(&best.node, pod.priority);
    for p in &lower {
        shared.nominator().delete(&p.key);
    }
    tokio::spawn(evict(
        shared.clone(),
        pod.pod.clone(),
        best.node.clone(),
        best.victims.clone(),
        lower,
    ));
    Outcome {
        message: String::new(),
        nominate: Some(best.node.clone()),
    }
}

async fn evict(
    shared: Arc<Shared>,
    preemptor: Arc<Pod>,
    node: String,
    victims: Vec<Arc<PodInfo>>,
    lower_nominated: Vec<Arc<PodInfo>>,
) {
    let uid = preemptor.metadata.uid.clone().unwrap_or_default();
    for v in victims {
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &v.namespace);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{}: preempting to accommodate a higher priority pod", shared.options.scheduler_name),
            "lastTransitionTime": tug_runtime::now(),
        }]}});
        if let Err(e) = api
            .patch_status(
                &v.key.name,
                &PatchParams::default(),
                &Patch::Strategic(condition),
            )
            .await
        {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                continue;
            }
            tracing::warn!(victim = %v.key, error = %e, "could not add the DisruptionTarget condition");
        }
        match api.delete(&v.key.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => {
                tracing::warn!(victim = %v.key, error = %e, "could not preempt");
                continue;
            }
        }
        shared.recorder.event(
            v.pod.as_ref(),
            EventType::Normal,
            "Preempted",
            format!("Preempted by pod {uid} on node {node}"),
        );
    }
    for p in lower_nominated {
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &p.namespace);
        let patch = serde_json::json!({"status": {"nominatedNodeName": null}});
        if let Err(e) = api
            .patch_status(&p.key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::debug!(pod = %p.key, error = %e, "could not clear nominatedNodeName");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod_with};

    fn prio(name: &str, p: i32, cpu: &str) -> Arc<PodInfo> {
        Arc::new(pod_with(
            name,
            serde_json::json!({"labels": {"app": name}}),
            serde_json::json!({"priority": p, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        ))
    }

    #[test]
    fn fewest_and_least_important_victims_are_chosen() {
        let fw = Framework::default_profile();
        let mut n = node(
            "n",
            serde_json::json!({"status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}}),
        );
        n.add_pod(prio("low-small", 1, "1"));
        n.add_pod(prio("low-big", 1, "2"));
        n.add_pod(prio("high", 100, "1"));
        let pod = prio("preemptor", 50, "2");
        let (victims, violations) = select_victims(
            &fw,
            &Nominator::default(),
            &CycleState::default(),
            &pod,
            &n,
            &[],
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        // Freeing 2 cpu: the reprieve keeps low-small (tried first: same priority, same start).
        let names: Vec<_> = victims.iter().map(|v| v.key.name.as_str()).collect();
        assert_eq!(names.len(), 1);
        assert_eq!(violations, 0);
        let none = prio("equal", 1, "8");
        let err = select_victims(
            &fw,
            &Nominator::default(),
            &CycleState::default(),
            &none,
            &n,
            &[],
        )
        .err()
        .unwrap_or_else(|| panic!("expected no victims"));
        assert_eq!(
            err.reasons,
            ["No preemption victims found for incoming pod"]
        );
    }

    #[test]
    fn pdb_violations_are_counted_and_avoided() {
        let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "guarded"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let (v, f) = split_by_pdb(
            &[prio("guarded", 1, "1"), prio("free", 1, "1")],
            &[Arc::new(pdb)],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key.name, "guarded");
        assert_eq!(f[0].key.name, "free");
        let c = |node: &str, viol: usize, victims: Vec<Arc<PodInfo>>| Candidate {
            node: node.into(),
            victims,
            pdb_violations: viol,
        };
        let cands = [
            c("a", 1, vec![prio("x", 1, "1")]),
            c("b", 0, vec![prio("y", 5, "1")]),
            c("c", 0, vec![prio("z", 3, "1"), prio("w", 3, "1")]),
            c("d", 0, vec![prio("v", 3, "1")]),
        ];
        assert_eq!(pick_one(&cands).map(|c| c.node.as_str()), Some("d"));
    }
}
