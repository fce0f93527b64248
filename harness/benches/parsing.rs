//! Parsing speed goals (run by `ci/bench.sh`; rates, not timed tests):
//! - a rawjson progress stream parses at >= 100 MB/s: a real stream (`tests/fixtures/newest-overlayfs`)
//!   copied until it is ~100 MB, each copy with its own vertex digests, so the merge sees ~100,000
//!   vertices as a long build's stream would;
//! - `bkcache cache inspect` of a 10,000-record cache takes < 100 ms: the real binary, end to end, on a
//!   generated local-cache layout (100 chains of 100 records, one layer each, as BuildKit writes them).
//!
//! Each figure is the median of 5 runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bkcache::observe::cache::{
    sha256_digest, CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, CACHECONFIG_MEDIA_TYPE,
};
use bkcache::observe::progress;

const ROUNDS: usize = 5;
const STREAM_BYTES: usize = 100 << 20;
const CHAINS: usize = 100;
const CHAIN_LENGTH: usize = 100;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn rawjson_stream() -> String {
    let real = include_str!("../tests/fixtures/newest-overlayfs/export.rawjson");
    let mut stream = String::with_capacity(STREAM_BYTES + real.len());
    for copy in 0.. {
        if stream.len() >= STREAM_BYTES {
            break;
        }
        stream.push_str(&real.replace("\"sha256:", &format!("\"sha256:{copy:08x}")));
    }
    stream
}

/// Writes `document` as a blob of the layout in `dir`; its descriptor's digest and size.
fn write_blob(dir: &Path, document: &[u8]) -> (String, usize) {
    let digest = sha256_digest(document);
    std::fs::write(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:")), document).unwrap();
    (digest, document.len())
}

fn cache_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let fake = |kind: &str, n: usize| sha256_digest(format!("{kind} {n}").as_bytes());
    let mut config = CacheConfig::default();
    for chain in 0..CHAINS {
        for depth in 0..CHAIN_LENGTH {
            let n = chain * CHAIN_LENGTH + depth;
            config.layers.push(CacheLayer {
                blob: fake("layer", n),
                parent: if depth == 0 { -1 } else { n as i64 - 1 },
                annotations: None,
            });
            config.records.push(CacheRecord {
                digest: fake("record", n),
                results: vec![CacheResult { layer: n, created_at: Some("2026-11-21T13:31:17Z".into()) }],
                chains: Vec::new(),
                inputs: if depth == 0 { Vec::new() } else { vec![vec![CacheInput { selector: None, link: n - 1 }]] },
            });
        }
    }
    let (config_digest, config_size) = write_blob(dir, &serde_json::to_vec(&config).unwrap());
    let descriptor = |media_type: &str, digest: &str, size: usize| serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size });
    let mut manifests: Vec<serde_json::Value> = config
        .layers
        .iter()
        .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &l.blob, 1024))
        .collect();
    manifests.push(descriptor(CACHECONFIG_MEDIA_TYPE, &config_digest, config_size));
    let cache_index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    });
    let (index_digest, index_size) = write_blob(dir, &serde_json::to_vec(&cache_index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor("application/vnd.oci.image.index.v1+json", &index_digest, index_size)],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

fn main() {
    let stream = rawjson_stream();
    let mut vertices = 0;
    let parse = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                vertices = progress::parse(&stream, true).steps.len();
                start.elapsed()
            })
            .collect(),
    );
    let rate = stream.len() as f64 / 1e6 / parse.as_secs_f64();
    println!("  rawjson parse ({} MB, {vertices} vertices)", stream.len() >> 20);
    println!("    rate                  {rate:.0} MB/s   (goal >= 100)");

    let dir = tempfile::tempdir().unwrap();
    cache_layout(dir.path());
    let inspect = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let output = Command::new(env!("CARGO_BIN_EXE_bkcache"))
                    .args(["cache", "inspect"])
                    .arg(dir.path())
                    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                    .output()
                    .unwrap();
                let elapsed = start.elapsed();
                let records = format!("{} records", CHAINS * CHAIN_LENGTH);
                assert!(
                    output.status.success() && String::from_utf8_lossy(&output.stdout).contains(&records),
                    "bkcache cache inspect failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                elapsed
            })
            .collect(),
    );
    println!(
        "  cache inspect ({} records, {} layers; the bkcache binary)",
        CHAINS * CHAIN_LENGTH,
        CHAINS * CHAIN_LENGTH
    );
    println!("    time                  {:.0} ms   (goal < 100)", inspect.as_secs_f64() * 1e3);
}
