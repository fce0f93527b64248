//! Images made here, where no registry can be pulled from: BuildKit's from the Go module (or a clone of
//! moby/buildkit), the releases the module proxy lists and which of them build here, and the root
//! filesystems every image bkcache makes starts from.

pub mod bases;
pub mod buildkit;
pub(crate) mod releases;
pub(crate) mod rootfs;
