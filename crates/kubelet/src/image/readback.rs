//! Test support: reads an archive written by [`super::Archive`] back with the `tar` crate,
//! following `index.json` → manifest → config and layer, and checks every digest and size
//! on the way, as containerd's importer does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

/// A read-back image.
pub(crate) struct Image {
    pub index: Value,
    pub config: Value,
    pub layer: Vec<LayerEntry>,
}

/// One entry of the layer.
pub(crate) struct LayerEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

impl Image {
    /// The layer entry at `path` (as written: relative, directories with a trailing `/`).
    pub fn entry(&self, path: &str) -> &LayerEntry {
        self.layer
            .iter()
            .rev()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no {path} in the layer"))
    }
}

fn sha256(data: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The blob a descriptor points at, its digest and size checked.
fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
    let digest = descriptor["digest"].as_str().unwrap();
    let path = format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap());
    let data = files.get(&path).unwrap_or_else(|| panic!("no blob {path}"));
    assert_eq!(sha256(data), digest, "{path} has the digest it is named by");
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(data.len() as u64),
        "{path}: size in the descriptor"
    );
    data
}

/// Reads and checks the archive `bytes`.
pub(crate) fn read(bytes: &[u8]) -> Image {
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(bytes).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value = serde_json::from_slice(blob(&files, &manifests[0])).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_slice(blob(&files, &manifest["config"])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let layer_bytes = blob(&files, &layers[0]);
    // Uncompressed: the diff id is the layer's own digest.
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        manifests[0]["platform"]["architecture"],
        config["architecture"]
    );
    // Nothing but the layout, the index and the three blobs.
    assert_eq!(files.len(), 5, "{:?}", files.keys().collect::<Vec<_>>());

    let mut layer = Vec::new();
    for entry in tar::Archive::new(layer_bytes).entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        layer.push(LayerEntry {
            path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            link: entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned()),
            data,
        });
    }
    Image {
        index,
        config,
        layer,
    }
}
