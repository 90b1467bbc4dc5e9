#!/usr/bin/env bash
# Builds the fuzz targets as coverage-guided libFuzzer binaries with plain cargo on the STABLE
# toolchain (no nightly, no cargo-fuzz needed): the same instrumentation cargo-fuzz asks rustc for
# (SanitizerCoverage: inline 8-bit counters, PC table, compare tracing) plus `--cfg fuzzing`.
# Binaries land in fuzz/target/<host triple>/<profile>/<target>; the profile is FUZZ_PROFILE:
# `fuzz` (default: optimised, for long runs) or `fuzz-ci` (quicker to build, for CI's short runs).
# Usage: fuzz/build.sh [target ...]   (no argument: every target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing \
 -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 -Cdebug-assertions -Coverflow-checks"
bins=()
for t in "$@"; do bins+=(--bin "$t"); done
# --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does). Not
# --locked: fuzz/Cargo.lock is the main lock file plus libfuzzer-sys, and when the main crate
# gains a dependency cargo adds just that entry (every pinned version stays) instead of failing.
cargo build --profile "${FUZZ_PROFILE:-fuzz}" --target "$triple" "${bins[@]}"
