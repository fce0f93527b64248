//! A record's result as a chain of layers, bottom first. A record's chain is its parent layers' chain
//! plus its own top layer, so chains are links that share what is below them: a cache of thousands of
//! records, each restoring a stack of dozens of layers, holds each layer once, and a chain's length,
//! size and eStargz count are known without walking it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cache::{CacheConfig, CacheRecord, LayerBlob};

#[derive(Clone, Default)]
pub struct LayerChain {
    top: Option<Arc<Link>>,
}

struct Link {
    blob: Arc<str>,
    below: Option<Arc<Link>>,
    /// Of the chain ending here.
    len: usize,
    bytes: u64,
    estargz: usize,
}

impl LayerChain {
    /// `self` with `blob` (described by `layer`, when the cache's descriptors name it) on top.
    fn push(&self, blob: Arc<str>, layer: Option<&LayerBlob>) -> LayerChain {
        let (len, bytes, estargz) = self.top.as_ref().map_or((0, 0, 0), |l| (l.len, l.bytes, l.estargz));
        let link = Link {
            blob,
            below: self.top.clone(),
            len: len + 1,
            bytes: bytes + layer.map_or(0, |l| l.size),
            estargz: estargz + usize::from(layer.is_some_and(|l| l.estargz)),
        };
        LayerChain { top: Some(Arc::new(link)) }
    }

    pub fn len(&self) -> usize {
        self.top.as_ref().map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.top.is_none()
    }

    /// The top layer's blob digest.
    pub fn top(&self) -> Option<&str> {
        self.top.as_deref().map(|l| &*l.blob)
    }

    /// The compressed size of its layers, as the cache's descriptors give it.
    pub fn bytes(&self) -> u64 {
        self.top.as_ref().map_or(0, |l| l.bytes)
    }

    /// How many of its layers are eStargz.
    pub fn estargz(&self) -> usize {
        self.top.as_ref().map_or(0, |l| l.estargz)
    }

    /// The blob digests, bottom first.
    pub fn blobs(&self) -> Vec<&str> {
        let mut blobs = Vec::with_capacity(self.len());
        let mut next = self.top.as_deref();
        while let Some(link) = next {
            blobs.push(&*link.blob);
            next = link.below.as_deref();
        }
        blobs.reverse();
        blobs
    }
}

impl PartialEq for LayerChain {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.blobs() == other.blobs()
    }
}

impl Eq for LayerChain {}

impl fmt::Debug for LayerChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.blobs()).finish()
    }
}

impl Serialize for LayerChain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.blobs().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LayerChain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let blobs = Vec::<String>::deserialize(deserializer)?;
        Ok(blobs.into_iter().fold(LayerChain::default(), |chain, b| chain.push(b.into(), None)))
    }
}

/// Each record's chain (its first result), with the layers' sizes from `described` (by layer index).
pub fn record_chains(config: &CacheConfig, described: &[Option<&LayerBlob>]) -> Vec<LayerChain> {
    let blobs: Vec<Arc<str>> = config.layers.iter().map(|l| Arc::from(l.blob.as_str())).collect();
    // the chain ending at each layer, built once: down to a built one (or the bottom), then back up
    let mut at: Vec<Option<LayerChain>> = vec![None; config.layers.len()];
    // which walk last passed a layer: a walk that meets its own mark is in a parent cycle
    let mut walked: Vec<usize> = vec![usize::MAX; config.layers.len()];
    let mut chain_at = |top: usize, walk: usize| -> LayerChain {
        let mut path = Vec::new();
        let mut next = Some(top);
        let mut base = LayerChain::default();
        while let Some(i) = next {
            if let Some(built) = &at[i] {
                base = built.clone();
                break;
            }
            if walked[i] == walk {
                break; // a parent cycle (a malformed cache): the chain stops where it repeats
            }
            walked[i] = walk;
            path.push(i);
            next = usize::try_from(config.layers[i].parent).ok().filter(|p| *p < config.layers.len());
        }
        for i in path.into_iter().rev() {
            base = base.push(blobs[i].clone(), described[i]);
            at[i] = Some(base.clone());
        }
        base
    };
    config
        .records
        .iter()
        .enumerate()
        .map(|(walk, r): (usize, &CacheRecord)| match (r.results.first(), r.chains.first()) {
            (Some(result), _) if result.layer < config.layers.len() => chain_at(result.layer, walk),
            (None, Some(explicit)) => explicit
                .layers
                .iter()
                .filter(|i| **i < config.layers.len())
                .fold(LayerChain::default(), |chain, i| chain.push(blobs[*i].clone(), described[*i])),
            _ => LayerChain::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::cache::{CacheLayer, CacheResult, ChainedResult};

    fn layer(blob: &str, parent: i64) -> CacheLayer {
        CacheLayer { blob: blob.into(), parent, annotations: None }
    }

    fn record(result: Option<usize>, chain: Option<Vec<usize>>) -> CacheRecord {
        CacheRecord {
            digest: "sha256:r".into(),
            results: result.map(|layer| CacheResult { layer, created_at: None }).into_iter().collect(),
            chains: chain.map(|layers| ChainedResult { layers, created_at: None }).into_iter().collect(),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn chains_follow_parents_bottom_first_and_sum_what_the_descriptors_say() {
        // layer 0 sits on layer 1 (BuildKit writes parents after children too)
        let config = CacheConfig {
            layers: vec![layer("top", 1), layer("base", -1), layer("cyc-a", 3), layer("cyc-b", 2)],
            records: vec![
                record(Some(0), None),
                record(Some(1), None),
                record(None, Some(vec![1, 0])),
                record(None, None),
                record(Some(2), None),
            ],
        };
        let base = LayerBlob { digest: "base".into(), media_type: String::new(), size: 5, estargz: true };
        let chains = record_chains(&config, &[None, Some(&base), None, None]);
        assert_eq!(chains[0].blobs(), ["base", "top"]);
        assert_eq!((chains[0].len(), chains[0].bytes(), chains[0].estargz(), chains[0].top()), (2, 5, 1, Some("top")));
        assert_eq!(chains[1].blobs(), ["base"]);
        assert_eq!(chains[2], chains[0], "an explicit chain equals the parent-linked one");
        assert!(chains[3].is_empty());
        // a parent cycle ends the chain where it repeats instead of looping
        assert_eq!(chains[4].blobs(), ["cyc-b", "cyc-a"]);
        let json = serde_json::to_string(&chains[0]).unwrap();
        assert_eq!(json, r#"["base","top"]"#);
        assert_eq!(serde_json::from_str::<LayerChain>(&json).unwrap(), chains[0]);
    }
}
