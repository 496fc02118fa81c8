//! ImageLocality: prefers nodes that already hold the pod's images, weighing each image by
//! its size and by how widely it is spread (so images everywhere do not pull pods together).

use std::sync::Arc;

use crate::framework::{Ctx, CycleState, Plugin, MAX_NODE_SCORE};
use crate::node_info::{normalize_image, NodeInfo, PodInfo};

const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

struct State {
    images: Vec<String>,
    /// How many nodes hold each image, over all nodes.
    spread: Vec<f64>,
    containers: i64,
}

/// The ImageLocality plugin.
pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        ctx: &Ctx<'_>,
    ) -> bool {
        let image_nodes = &ctx.snapshot.image_nodes;
        if image_nodes.is_empty() {
            return false;
        }
        let total = ctx.snapshot.nodes.len().max(1) as f64;
        let Some(spec) = pod.pod.spec.as_ref() else {
            return false;
        };
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter());
        let mut images = Vec::new();
        let mut spread = Vec::new();
        let mut containers = 0;
        for c in all {
            containers += 1;
            if let Some(img) = c.image.as_deref() {
                let n = normalize_image(img);
                spread.push(image_nodes.get(&n).copied().unwrap_or(0) as f64 / total);
                images.push(n);
            }
        }
        state.write(
            NAME,
            State {
                images,
                spread,
                containers,
            },
        );
        true
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<State>(NAME) else {
            return 0;
        };
        let mut sum = 0i64;
        for (img, spread) in s.images.iter().zip(&s.spread) {
            if let Some(size) = node.images.get(img) {
                sum += (*size as f64 * spread) as i64;
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * s.containers.max(1);
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}
