//! The layer stores a host keeps under its root: unpacked layers (`layers/`, by diff ID)
//! and, on Windows, layers imported into HCS (`wclayers/`, by chain ID).

use std::path::Path;

use crate::error::LayerError;
use crate::store::LayerStore;

#[derive(Debug, Clone)]
pub struct HostLayers {
    pub unpacked: LayerStore,
    #[cfg(windows)]
    pub imported: crate::hcs_store::HcsLayerStore,
}

impl HostLayers {
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        Ok(Self {
            unpacked: LayerStore::open(&root.join("layers"))?,
            #[cfg(windows)]
            imported: crate::hcs_store::HcsLayerStore::open(&root.join("wclayers"))?,
        })
    }

    /// Keeps the layers `images` use (each image given as its diff IDs, base first) and
    /// those `leased` names (by diff ID or chain ID: the layers of pulls in progress), and
    /// removes the rest from every store; returns what was removed.
    pub fn retain(
        &self,
        images: &[Vec<String>],
        leased: &[String],
    ) -> Result<Vec<String>, LayerError> {
        let mut removed = Vec::new();
        #[cfg(windows)]
        {
            let chains: Vec<String> = images
                .iter()
                .flat_map(|diff_ids| crate::hcs_store::chain_ids(diff_ids))
                .chain(leased.iter().cloned())
                .collect();
            removed.extend(self.imported.retain(&chains)?);
        }
        let diff_ids: Vec<String> = images.iter().flatten().chain(leased).cloned().collect();
        removed.extend(self.unpacked.retain(&diff_ids)?);
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryKind, LayerEntry};
    use crate::{LayerReader, LayerWriter};

    fn layer(name: &str) -> (Vec<u8>, String) {
        let mut writer = LayerWriter::new(Vec::new());
        writer
            .append(&LayerEntry::new("Files", EntryKind::Directory), None)
            .unwrap();
        let entry = LayerEntry::new(format!("Files/{name}"), EntryKind::File { size: 1 });
        writer.append(&entry, Some(&mut &b"x"[..])).unwrap();
        let tar = writer.finish().unwrap();
        let diff_id = LayerReader.read(&tar[..], |_, _| Ok(())).unwrap().diff_id;
        (tar, diff_id)
    }

    #[test]
    fn retain_keeps_every_layer_of_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostLayers::open(dir.path()).unwrap();
        let layers: Vec<(Vec<u8>, String)> = ["a", "b", "c"].iter().map(|n| layer(n)).collect();
        for (tar, diff_id) in &layers {
            host.unpacked.unpack(&tar[..], diff_id).unwrap();
        }
        let (a, b, c) = (&layers[0].1, &layers[1].1, &layers[2].1);
        let removed = host
            .retain(&[vec![a.clone()], vec![a.clone(), c.clone()]], &[])
            .unwrap();
        assert_eq!(removed, std::slice::from_ref(b));
        assert!(host.unpacked.has(a) && host.unpacked.has(c) && !host.unpacked.has(b));
        // A layer only a pull in progress holds (by its diff ID) stays too.
        let removed = host
            .retain(&[vec![a.clone()]], std::slice::from_ref(c))
            .unwrap();
        assert!(removed.is_empty(), "{removed:?}");
        assert!(host.unpacked.has(c));
    }
}
