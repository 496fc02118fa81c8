//! The deployment strategies, as upstream's `rolling.go`, `recreate.go` and `sync.go`:
//! RollingUpdate (scale the new ReplicaSet up within maxSurge, the old ones down within
//! maxUnavailable), Recreate (old to zero, wait for their pods, then the new one up),
//! proportional scaling when only `replicas` changes, old ReplicaSet clean-up, and the
//! status with its Progressing and Available conditions.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use super::util::{self, reason};
use super::{Controller, Error, Sets};

/// The size the new ReplicaSet should have now (upstream's `NewRSNewReplicas`).
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let replicas = util::replicas(d);
    if !util::is_rolling(d) {
        return replicas;
    }
    let current = util::spec_replicas(all);
    let max_total = replicas + util::max_surge(d);
    let new_size = util::rs_replicas(new);
    if current >= max_total {
        return new_size;
    }
    let up = (max_total - current).min(replicas - new_size);
    new_size + up
}

fn is_active(rs: &ReplicaSet) -> bool {
    util::rs_replicas(rs) > 0
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

impl Controller {
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, Error> {
        let mut sets = self.sets(d, rss, true).await?;
        if self.reconcile_new(d, &mut sets).await? {
            return self.sync_rollout_status(d, &sets).await;
        }
        if self.reconcile_old(d, &mut sets).await? {
            return self.sync_rollout_status(d, &sets).await;
        }
        if util::is_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_rollout_status(d, &sets).await
    }

    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, Error> {
        let mut sets = self.sets(d, rss.clone(), false).await?;
        let mut scaled = false;
        for rs in sets.old.iter_mut().filter(|r| is_active(r)) {
            scaled |= self.scale_rs_to(d, rs, 0).await?;
        }
        if scaled || self.old_pods_running(d, &sets) {
            return self.sync_rollout_status(d, &sets).await;
        }
        if sets.new.is_none() {
            sets = self.sets(d, rss, true).await?;
        }
        let replicas = util::replicas(d);
        if let Some(mut new) = sets.new.take() {
            self.scale_rs_to(d, &mut new, replicas).await?;
            sets.new = Some(new);
        }
        if util::is_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_rollout_status(d, &sets).await
    }

    /// Scales the new ReplicaSet toward `replicas` within maxSurge; answers whether it did.
    async fn reconcile_new(&self, d: &Deployment, sets: &mut Sets) -> Result<bool, Error> {
        let Some(mut new) = sets.new.take() else {
            return Ok(false);
        };
        let replicas = util::replicas(d);
        let size = util::rs_replicas(&new);
        let result = if size == replicas {
            Ok(false)
        } else if size > replicas {
            self.scale_rs(d, &mut new, replicas, "down").await
        } else {
            let all: Vec<&ReplicaSet> = sets.old.iter().chain(std::iter::once(&new)).collect();
            let count = new_rs_replicas(d, &all, &new);
            self.scale_rs_to(d, &mut new, count).await
        };
        sets.new = Some(new);
        result
    }

    /// Scales old ReplicaSets down within maxUnavailable, unhealthy replicas first; answers
    /// whether it did (upstream's `reconcileOldReplicaSets`).
    async fn reconcile_old(&self, d: &Deployment, sets: &mut Sets) -> Result<bool, Error> {
        let old_count = util::spec_replicas(&sets.old.iter().collect::<Vec<_>>());
        if old_count == 0 {
            return Ok(false);
        }
        let all_count = util::spec_replicas(&sets.all());
        let min_available = util::replicas(d) - util::max_unavailable(d);
        let new_unavailable = sets.new.as_ref().map_or(0, |n| {
            util::rs_replicas(n)
                - n.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
        });
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy replicas of old sets go first, oldest set first.
        sets.old.sort_by(by_creation);
        let mut cleaned = 0;
        for rs in sets.old.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let size = util::rs_replicas(rs);
            let available = rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if size == 0 || size == available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(size - available);
            self.scale_rs(d, rs, size - down, "down").await?;
            cleaned += down;
        }
        // Then available ones, as far as minAvailable allows.
        let available = util::available_replicas(&sets.all());
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for rs in sets.old.iter_mut() {
                if scaled >= total {
                    break;
                }
                let size = util::rs_replicas(rs);
                if size == 0 {
                    continue;
                }
                let down = size.min(total - scaled);
                self.scale_rs(d, rs, size - down, "down").await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    /// Whether `replicas` changed since the active ReplicaSets were last scaled.
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let sets = self.sets(d, rss.to_vec(), false).await?;
        let replicas = util::replicas(d);
        Ok(sets.all().into_iter().filter(|r| is_active(r)).any(|rs| {
            util::int_annotation(rs, util::DESIRED_REPLICAS).is_some_and(|want| want != replicas)
        }))
    }

    /// A sync without a rollout (paused, or only scaled): upstream's `sync`.
    pub(super) async fn sync_scale(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, Error> {
        let mut sets = self.sets(d, rss, false).await?;
        self.scale(d, &mut sets).await?;
        if d.spec.paused == Some(true) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_status(d, &sets).await?;
        Ok(None)
    }

    /// Spreads a change of `replicas` over the active ReplicaSets in proportion to their
    /// sizes (upstream's `scale`).
    async fn scale(&self, d: &Deployment, sets: &mut Sets) -> Result<(), Error> {
        let replicas = util::replicas(d);
        let active: Vec<&ReplicaSet> = sets.all().into_iter().filter(|r| is_active(r)).collect();
        // One active set (or none): it takes all the replicas.
        if active.len() <= 1 {
            let target = match active.first() {
                Some(rs) => Some(rs.name_any()),
                None => match &sets.new {
                    Some(n) => Some(n.name_any()),
                    None => {
                        let mut old: Vec<&ReplicaSet> = sets.old.iter().collect();
                        old.sort_by(|a, b| by_creation(b, a));
                        old.first().map(|r| r.name_any())
                    }
                },
            };
            if let Some(name) = target {
                let rs = sets
                    .old
                    .iter_mut()
                    .chain(sets.new.as_mut())
                    .find(|r| r.name_any() == name);
                if let Some(rs) = rs {
                    self.scale_rs_to(d, rs, replicas).await?;
                }
            }
            return Ok(());
        }
        // The new set is saturated: the old ones go to zero.
        if let Some(new) = &sets.new {
            let available = new
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if util::int_annotation(new, util::DESIRED_REPLICAS) == Some(replicas)
                && available == replicas
                && util::rs_replicas(new) == replicas
            {
                for rs in sets.old.iter_mut().filter(|r| is_active(r)) {
                    self.scale_rs_to(d, rs, 0).await?;
                }
                return Ok(());
            }
        }
        if !util::is_rolling(d) {
            return Ok(());
        }
        let total: i32 = active.iter().map(|r| util::rs_replicas(r)).sum();
        let allowed = if replicas > 0 {
            replicas + util::max_surge(d)
        } else {
            0
        };
        let to_add = allowed - total;
        let mut order: Vec<(String, i32, Option<_>)> = active
            .iter()
            .map(|r| {
                (
                    r.name_any(),
                    util::rs_replicas(r),
                    r.metadata.creation_timestamp.clone(),
                )
            })
            .collect();
        let op = if to_add > 0 {
            // Largest first; on a tie, newer first.
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.2.cmp(&a.2)));
            "up"
        } else {
            // Largest first; on a tie, older first.
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
            "down"
        };
        let mut sizes: HashMap<String, i32> = HashMap::new();
        let mut added = 0;
        for (name, size, _) in &order {
            let rs = active.iter().find(|r| &r.name_any() == name);
            let proportion = match rs {
                Some(rs) if to_add != 0 => proportion(d, rs, to_add, added),
                _ => 0,
            };
            sizes.insert(name.clone(), size + proportion);
            added += proportion;
        }
        if to_add != 0 && added != to_add {
            if let Some((name, _, _)) = order.first() {
                let e = sizes.entry(name.clone()).or_default();
                *e = (*e + to_add - added).max(0);
            }
        }
        for rs in sets.old.iter_mut().chain(sets.new.as_mut()) {
            if let Some(&size) = sizes.get(&rs.name_any()) {
                self.scale_rs(d, rs, size, op).await?;
            }
        }
        Ok(())
    }

    /// Deletes old ReplicaSets beyond revisionHistoryLimit, oldest revision first, if they
    /// are scaled to zero and settled.
    async fn cleanup(&self, d: &Deployment, sets: &Sets) -> Result<(), Error> {
        let Some(limit) = d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = sets
            .old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            util::revision(a)
                .cmp(&util::revision(b))
                .then_with(|| by_creation(a, b))
        });
        let api: Api<ReplicaSet> = self.api(&d.namespace().unwrap_or_default());
        for rs in cleanable
            .into_iter()
            .take(usize::try_from(diff).unwrap_or(0))
        {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || util::rs_replicas(rs) != 0
                || rs.metadata.generation > status.observed_generation
            {
                continue;
            }
            match api.delete(&rs.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The status the ReplicaSets add up to, with the Available condition.
    fn calculate_status(&self, d: &Deployment, sets: &Sets) -> DeploymentStatus {
        let all = sets.all();
        let available = util::available_replicas(&all);
        let unavailable = (util::spec_replicas(&all) - available).max(0);
        let old = d.status.clone().unwrap_or_default();
        let mut s = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(util::actual_replicas(&all)),
            updated_replicas: Some(util::actual_replicas(&sets.new.iter().collect::<Vec<_>>())),
            ready_replicas: Some(util::ready_replicas(&all)),
            available_replicas: Some(available),
            unavailable_replicas: Some(unavailable),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        let c = if available >= util::replicas(d) - util::max_unavailable(d) {
            util::condition(
                "Available",
                "True",
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
            )
        } else {
            util::condition(
                "Available",
                "False",
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
            )
        };
        util::set_condition(&mut s, c);
        s
    }

    /// Writes the status when it changed (upstream's `syncDeploymentStatus`).
    pub(super) async fn sync_status(&self, d: &mut Deployment, sets: &Sets) -> Result<(), Error> {
        let s = self.calculate_status(d, sets);
        if Some(&s) != d.status.as_ref() {
            self.write_status(d, s).await?;
        }
        Ok(())
    }

    /// Writes the status with the Progressing condition and answers when to look again for
    /// the progress deadline (upstream's `syncRolloutStatus` and `requeueStuckDeployment`).
    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        sets: &Sets,
    ) -> Result<Option<Duration>, Error> {
        let mut s = self.calculate_status(d, sets);
        if !util::has_progress_deadline(d) {
            util::remove_condition(&mut s, "Progressing");
        }
        let current = util::get_condition(&s, "Progressing").cloned();
        let complete_already = s.replicas == s.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(reason::NEW_RS_AVAILABLE);
        if util::has_progress_deadline(d) && !complete_already {
            let what = match &sets.new {
                Some(rs) => format!("ReplicaSet {:?}", rs.name_any()),
                None => format!("Deployment {:?}", d.name_any()),
            };
            if util::is_complete(d, &s) {
                let msg = format!("{what} has successfully progressed.");
                util::set_condition(
                    &mut s,
                    util::condition("Progressing", "True", reason::NEW_RS_AVAILABLE, msg),
                );
            } else if util::is_progressing(d, &s) {
                let msg = format!("{what} is progressing.");
                let mut c = util::condition("Progressing", "True", reason::RS_UPDATED, msg);
                if let Some(cur) = current
                    .as_ref()
                    .filter(|c| c.status.as_deref() == Some("True"))
                {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                util::remove_condition(&mut s, "Progressing");
                s.conditions.get_or_insert_with(Vec::new).push(c);
            } else if util::timed_out(d, &s) {
                let msg = format!("{what} has timed out progressing.");
                util::set_condition(
                    &mut s,
                    util::condition("Progressing", "False", reason::TIMED_OUT, msg),
                );
            }
        }
        // A ReplicaFailure of any ReplicaSet (the new one first) shows on the Deployment.
        let failure = sets
            .new
            .iter()
            .chain(sets.old.iter())
            .filter_map(|rs| rs.status.as_ref()?.conditions.as_ref())
            .flatten()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
            .cloned();
        match failure {
            Some(f) => util::set_condition(
                &mut s,
                util::condition(
                    "ReplicaFailure",
                    f.status.as_deref().unwrap_or("True"),
                    f.reason.as_deref().unwrap_or_default(),
                    f.message.clone().unwrap_or_default(),
                ),
            ),
            None => util::remove_condition(&mut s, "ReplicaFailure"),
        }
        if s.conditions.as_ref().is_some_and(Vec::is_empty) {
            s.conditions = None;
        }
        if Some(&s) != d.status.as_ref() {
            self.write_status(d, s).await?;
            return Ok(None);
        }
        // Unchanged: look again when the progress deadline would pass.
        if util::is_complete(d, &s) {
            return Ok(None);
        }
        Ok(util::deadline_left(d, &s)
            .map(|left| Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1))))
    }
}

/// How many of `to_add` replicas `rs` takes, in proportion to its share of the
/// Deployment's last max-replicas (upstream's `GetProportion`).
fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    let size = util::rs_replicas(rs);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(d, rs);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    let replicas = util::replicas(d);
    let size = util::rs_replicas(rs);
    if replicas == 0 {
        return -size;
    }
    let deployment_replicas = replicas + util::max_surge(d);
    let annotated = util::int_annotation(rs, util::MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let new_size = f64::from(size) * f64::from(deployment_replicas) / f64::from(annotated);
    // Rounded as Go's math.Round (half away from zero).
    (new_size.round() as i32) - size
}
