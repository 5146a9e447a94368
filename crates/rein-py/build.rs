//! Where the extension finds MuJoCo's shared library at import: next to it in site-packages,
//! the `mujoco` wheel (a dependency of the package) ships `mujoco/libmujoco.so.3.17.0`
//! (`$ORIGIN/../mujoco` from `site-packages/rein/`); in a develop install (`python/rein/`),
//! the checkout's third_party/mujoco/lib; and the directory the build linked against.

fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    println!("cargo::rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../mujoco");
    println!("cargo::rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../../third_party/mujoco/lib");
    if let Ok(dir) = std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
        println!("cargo::rustc-link-arg-cdylib=-Wl,-rpath,{dir}");
    }
}
