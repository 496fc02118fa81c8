//! The pods a Job makes: its template with the Job's labels, controller reference and the
//! `batch.kubernetes.io/job-tracking` finalizer, and for Indexed Jobs the completion index
//! (annotation, label, `JOB_COMPLETION_INDEX` from the downward API, hostname
//! `<job>-<index>`), as upstream's job controller builds them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use kube::ResourceExt;

use crate::util::controller_ref;

/// The finalizer that keeps a finished pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The label and annotation holding an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The label holding the Job's uid.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label holding the Job's name.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The legacy uid label.
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
/// The legacy name label.
pub const LEGACY_JOB_NAME: &str = "job-name";
/// The environment variable carrying the index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The labels the apiserver adds to a Job's template when it generates the selector.
pub fn job_labels(job: &Job) -> BTreeMap<String, String> {
    let uid = job.uid().unwrap_or_default();
    let name = job.name_any();
    BTreeMap::from([
        (CONTROLLER_UID.to_owned(), uid.clone()),
        (JOB_NAME.to_owned(), name.clone()),
        (LEGACY_CONTROLLER_UID.to_owned(), uid),
        (LEGACY_JOB_NAME.to_owned(), name),
    ])
}

/// Whether the Job's selector is generated (not `manualSelector`).
pub fn generated_selector(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.manual_selector) != Some(true)
}

/// The selector the Job's pods answer to: its own, or the generated one on its uid.
pub fn selector(job: &Job) -> LabelSelector {
    match job.spec.as_ref().and_then(|s| s.selector.clone()) {
        Some(sel) => sel,
        None => LabelSelector {
            match_labels: Some(BTreeMap::from([(
                CONTROLLER_UID.to_owned(),
                job.uid().unwrap_or_default(),
            )])),
            match_expressions: None,
        },
    }
}

/// Whether the Job is Indexed.
pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// A pod's completion index, from its annotation (or label).
pub fn pod_index(pod: &Pod) -> Option<i32> {
    pod.annotations()
        .get(COMPLETION_INDEX)
        .or_else(|| pod.labels().get(COMPLETION_INDEX))?
        .parse()
        .ok()
}

/// Whether the pod carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// The pod for the Job (and `index`, for Indexed Jobs).
pub fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    if generated_selector(job) {
        labels.extend(job_labels(job));
    }
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let name = job.name_any();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.to_owned(), i.to_string());
            annotations.insert(COMPLETION_INDEX.to_owned(), i.to_string());
            if spec.hostname.as_deref().is_none_or(str::is_empty) {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: INDEX_ENV.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for c in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut())
            {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.to_owned());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}
