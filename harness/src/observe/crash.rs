//! A buildkitd that crashed: Go prints the panic and the panicking goroutine's stack to stderr, which is
//! the builder container's log, before the process exits:
//!
//! ```text
//! panic: assignment to entry in nil map
//!
//! goroutine 61 [running]:
//! github.com/moby/buildkit/cache.(*immutableRef).getRemote(0x1d2c4d5aa8d0, ...)
//!     github.com/moby/buildkit/cache/remote.go:232 +0xc06
//! ```
//!
//! (captured from v0.10.6 and v0.11.0 stargz builders exporting a cache with forced zstd compression,
//! 2026-12-06). A build that failed because buildkitd crashed is BuildKit's doing, not the machine's.

/// The panic of a buildkitd log, with the function and source line it happened in:
/// `panic: assignment to entry in nil map (in github.com/moby/buildkit/cache.(*immutableRef).getRemote,
/// github.com/moby/buildkit/cache/remote.go:232)`.
pub fn panic_of(log: &str) -> Option<String> {
    let mut lines = log.lines().skip_while(|l| !l.starts_with("panic: "));
    let panic = lines.next()?.trim_end().to_owned();
    let mut frame = lines.skip_while(|l| !l.starts_with("goroutine ")).skip(1);
    // `pkg.(*T).method(args...)`: the argument list is the last parenthesis
    let function = frame.next().and_then(|f| f.rfind('(').map(|args| f[..args].to_owned()));
    let place = frame.next().and_then(|p| p.split_whitespace().next().map(str::to_owned));
    Some(match (function, place) {
        (Some(function), Some(place)) if !function.is_empty() => format!("{panic} (in {function}, {place})"),
        _ => panic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "time=\"2026-12-06T07:19:03Z\" level=debug msg=\"session started\"\npanic: assignment to entry in nil map\n\ngoroutine 61 [running]:\ngithub.com/moby/buildkit/cache.(*immutableRef).getRemote(0x1d2c4d5aa8d0, {0x14ca9e8, 0x1d2c4d57e6c0}, 0x1?, {{0xcc63c0?, 0xe8?, 0x0?}, 0x5?}, {0x14b9f80, 0x1d2c4d736b88})\n\tgithub.com/moby/buildkit/cache/remote.go:232 +0xc06\ngithub.com/moby/buildkit/cache.(*immutableRef).GetRemotes(0x1d2c4d5aa8d0, {0x14ca9e8, 0x1d2c4d75e2a0}, 0x1, {{0x48b585?, 0x20?, 0x0?}, 0xff?}, 0x0, {0x14b9f80, ...})\n\tgithub.com/moby/buildkit/cache/remote.go:45 +0x18e\n";

    #[test]
    fn a_panic_is_named_with_where_it_happened() {
        assert_eq!(
            panic_of(LOG).as_deref(),
            Some("panic: assignment to entry in nil map (in github.com/moby/buildkit/cache.(*immutableRef).getRemote, github.com/moby/buildkit/cache/remote.go:232)")
        );
        assert_eq!(panic_of("time=\"x\" level=info msg=\"running server on /run/buildkit/buildkitd.sock\"\n"), None);
        assert_eq!(panic_of("panic: boom\n").as_deref(), Some("panic: boom"));
    }
}
