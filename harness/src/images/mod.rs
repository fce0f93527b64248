//! BuildKit images made here from the Go module (or a clone of moby/buildkit), and the releases the
//! module proxy lists, with which of them build here.

pub mod buildkit;
pub mod releases;
