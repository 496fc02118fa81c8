//! Resource arithmetic as upstream's scheduler framework does it: quantities parsed to
//! integers (millicores for cpu, bytes or units for everything else), a pod's effective
//! request as `computePodResourceRequest` (containers summed, init containers as a maximum,
//! restartable init containers — sidecars — counted with both, pod overhead added, pod-level
//! requests preferred) and the non-zero requests scoring uses for containers that ask for
//! nothing.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The cpu the scoring plugins count for a container without a cpu request (100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory the scoring plugins count for a container without a memory request (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Parses a quantity into thousandths of a unit, rounding up as `Quantity.MilliValue()`;
/// `None` for text that is no quantity.
pub fn parse_milli(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (neg, num) = match num.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    // The value is mantissa / 10^scale, times 2^bin or 10^dec from the suffix.
    let digits = format!("{int_part}{frac_part}");
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut scale = frac_part.len() as i32;
    let (bin, dec): (u32, i32) = match suffix {
        "" => (0, 0),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        s if s.starts_with(['e', 'E']) => (0, s[1..].parse().ok()?),
        _ => return None,
    };
    mantissa = mantissa.checked_mul(1i128 << bin)?;
    // milli: multiply by 1000.
    scale -= dec + 3;
    let value = if scale <= 0 {
        mantissa.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?
    } else {
        let div = 10i128.checked_pow(u32::try_from(scale).ok()?)?;
        // Round away from zero, as resource.Quantity does.
        (mantissa + div - 1) / div
    };
    let value = if neg { -value } else { value };
    i64::try_from(value).ok()
}

/// A quantity in thousandths (cpu's millicores); 0 for unparsable text.
pub fn milli_value(q: &Quantity) -> i64 {
    parse_milli(&q.0).unwrap_or(0)
}

/// A quantity in whole units rounded up (`Quantity.Value()`); 0 for unparsable text.
pub fn value(q: &Quantity) -> i64 {
    let m = milli_value(q);
    if m >= 0 {
        (m + 999) / 1000
    } else {
        m / 1000
    }
}

/// Whether a resource name is a scalar resource the scheduler counts besides cpu, memory,
/// ephemeral-storage and pods: extended resources (`vendor.example/thing`), hugepages and
/// attachable volumes.
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

/// Resources as the scheduler counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    /// Pods (only meaningful for a node's allocatable).
    pub allowed_pods: i64,
    /// Extended resources, hugepages, attachable volumes: name and amount.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    /// The resources of a resource list.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resource::default();
        r.add_list(list);
        r
    }

    /// Adds a resource list.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu += milli_value(q),
                "memory" => self.memory += value(q),
                "ephemeral-storage" => self.ephemeral_storage += value(q),
                "pods" => self.allowed_pods += value(q),
                n if is_scalar_resource(n) => self.add_scalar(n, value(q)),
                _ => {}
            }
        }
    }

    /// The amount of a scalar resource.
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    fn add_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.iter_mut().find(|(n, _)| n == name) {
            Some((_, have)) => *have += v,
            None => self.scalar.push((name.to_owned(), v)),
        }
    }

    fn set_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.iter_mut().find(|(n, _)| n == name) {
            Some((_, have)) => *have = v,
            None => self.scalar.push((name.to_owned(), v)),
        }
    }

    /// Adds another resource set.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pods += other.allowed_pods;
        for (n, v) in &other.scalar {
            self.add_scalar(n, *v);
        }
    }

    /// Subtracts another resource set.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pods -= other.allowed_pods;
        for (n, v) in &other.scalar {
            self.add_scalar(n, -*v);
        }
    }

    /// Raises every amount to at least `other`'s.
    pub fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (n, v) in &other.scalar {
            let m = self.scalar(n).max(*v);
            self.set_scalar(n, m);
        }
    }

    /// Whether nothing is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

fn requests(r: Option<&ResourceRequirements>) -> Option<&BTreeMap<String, Quantity>> {
    r.and_then(|r| r.requests.as_ref())
}

fn container_requests(c: &Container) -> Resource {
    requests(c.resources.as_ref())
        .map(Resource::from_list)
        .unwrap_or_default()
}

fn non_zero(c: &Container) -> (i64, i64) {
    let req = requests(c.resources.as_ref());
    let cpu = req
        .and_then(|r| r.get("cpu"))
        .map_or(DEFAULT_MILLI_CPU_REQUEST, milli_value);
    let mem = req
        .and_then(|r| r.get("memory"))
        .map_or(DEFAULT_MEMORY_REQUEST, value);
    (cpu, mem)
}

/// What a pod asks of a node, as upstream's `computePodResourceRequest`: the sum of its
/// containers, at least as much as any init container (plus the sidecars started before
/// it), sidecars added to the total, pod overhead on top. Pod-level requests, where set,
/// stand for the containers' sum.
pub fn pod_requests(pod: &Pod) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for ic in spec.init_containers.iter().flatten() {
        let mut r = container_requests(ic);
        if ic.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.max_with(&r);
    }
    reqs.max_with(&init_max);
    if let Some(pod_level) = requests(spec.resources.as_ref()) {
        let p = Resource::from_list(pod_level);
        if pod_level.contains_key("cpu") {
            reqs.milli_cpu = p.milli_cpu;
        }
        if pod_level.contains_key("memory") {
            reqs.memory = p.memory;
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add_list(overhead);
    }
    reqs
}

/// The cpu and memory the scoring plugins count for a pod: as [`pod_requests`], with
/// 100m / 200 MiB for containers that request none.
pub fn pod_non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let (c_cpu, c_mem) = non_zero(c);
        cpu += c_cpu;
        mem += c_mem;
    }
    let (mut side_cpu, mut side_mem) = (0, 0);
    let (mut init_cpu, mut init_mem) = (0, 0);
    for ic in spec.init_containers.iter().flatten() {
        let (mut c_cpu, mut c_mem) = non_zero(ic);
        if ic.restart_policy.as_deref() == Some("Always") {
            cpu += c_cpu;
            mem += c_mem;
            side_cpu += c_cpu;
            side_mem += c_mem;
            (c_cpu, c_mem) = (side_cpu, side_mem);
        } else {
            c_cpu += side_cpu;
            c_mem += side_mem;
        }
        init_cpu = init_cpu.max(c_cpu);
        init_mem = init_mem.max(c_mem);
    }
    cpu = cpu.max(init_cpu);
    mem = mem.max(init_mem);
    if let Some(pod_level) = requests(spec.resources.as_ref()) {
        if let Some(q) = pod_level.get("cpu") {
            cpu = milli_value(q);
        }
        if let Some(q) = pod_level.get("memory") {
            mem = value(q);
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        let o = Resource::from_list(overhead);
        cpu += o.milli_cpu;
        mem += o.memory;
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_upstream() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("500Mi"), Some(500 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1k"), Some(1_000_000));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("0.1m"), Some(1));
        assert_eq!(parse_milli("x"), None);
        assert_eq!(value(&Quantity("32Gi".into())), 32 * 1024 * 1024 * 1024);
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("pod: {e}"))
    }

    #[test]
    fn init_containers_sidecars_and_overhead_count_as_upstream() {
        let p = pod(serde_json::json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "500m"}}}
                ],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                    {"name": "init", "resources": {"requests": {"cpu": "3", "nvidia.com/gpu": "1"}}}
                ],
                "overhead": {"cpu": "10m"}
            }
        }));
        let r = pod_requests(&p);
        // containers 1.5 + sidecar 0.2 = 1.7; init 3 + sidecar 0.2 = 3.2 wins; + 10m overhead.
        assert_eq!(r.milli_cpu, 3210);
        assert_eq!(r.memory, 1024 * 1024 * 1024);
        assert_eq!(r.scalar("nvidia.com/gpu"), 1);
        let (cpu, mem) = pod_non_zero_requests(&p);
        assert_eq!(cpu, 3210);
        // b and the init containers default to 200 MiB; a asks 1 Gi.
        assert_eq!(mem, 1024 * 1024 * 1024 + 2 * DEFAULT_MEMORY_REQUEST);
    }
}
