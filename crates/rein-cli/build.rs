//! Gives the `rein` binary an rpath to MuJoCo's shared library (the directory the build linked
//! against, MUJOCO_DYNAMIC_LINK_DIR, set by .cargo/config.toml to third_party/mujoco/lib), so
//! that `target/release/rein` runs without LD_LIBRARY_PATH. A binary copied elsewhere finds the
//! library next to itself ($ORIGIN: copy libmujoco.so.3.17.0 along), through LD_LIBRARY_PATH,
//! or as a system library.

fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    if let Ok(dir) = std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
        println!("cargo::rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
    // A copy of the binary with the library beside it.
    println!("cargo::rustc-link-arg-bins=-Wl,-rpath,$ORIGIN");
    // target/{debug,release}/rein in a checkout whose third_party/ moved with it.
    println!("cargo::rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../../third_party/mujoco/lib");
}
