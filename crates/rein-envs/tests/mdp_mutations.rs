//! Thousands of seeded mutations of valid MDP JSON files (both layouts): each loads or fails
//! with an error naming the file, never panics, and a loaded one solves (or reports its
//! divergence) within a bounded number of sweeps and under `ALLOCATION_BOUND` bytes.

use rein_core::fuzz::{peak_allocation, CountingAllocator, ALLOCATION_BOUND};
use rein_envs::mdp::TabularMdp;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn mdp_files_survive_mutations() {
    let dir = std::env::temp_dir().join(format!("rein-mdp-mutations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let valid = [
        r#"{"gamma": 0.9, "P": [[[[0.8, 1, 0.0, false], [0.2, 0, 0.0, false]], [[1.0, 0, -1.0, false]]],
                               [[[1.0, 2, 1.0, true]], [[0.5, 0, 0.0, false], [0.5, 2, 2.0, true]]],
                               [[[1.0, 2, 0.0, true]], [[1.0, 2, 0.0, true]]]]}"#,
        r#"{"gamma": 0.95, "transition": [[[0.1, 0.9], [1.0, 0.0]], [[0.0, 1.0], [0.5, 0.5]]],
             "reward": [[0.0, 1.0], [2.0, -1.0]], "terminal": [false, true], "initial": [1.0, 0.0]}"#,
    ];
    let path = dir.join("m.json");
    let mut rng = rein_core::rng_from_seed(7);
    for text in valid {
        std::fs::write(&path, text).unwrap();
        TabularMdp::read(&path).expect("the valid file loads");
        for k in 0..3000 {
            let bytes = rein_core::fuzz::mutate(text.as_bytes(), &mut rng);
            std::fs::write(&path, &bytes).unwrap();
            let t = Instant::now();
            let (r, grew) = peak_allocation(|| {
                std::panic::catch_unwind(|| {
                    if let Ok(m) = TabularMdp::read(&path) {
                        let _ = m.value_iteration(1e-8, 100_000);
                        let _ = m.policy_iteration(1000);
                        true
                    } else {
                        false
                    }
                })
            });
            assert!(
                grew < ALLOCATION_BOUND,
                "mutation {k} allocated {grew} bytes"
            );
            assert!(
                r.is_ok(),
                "mutation {k} panicked: {}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "mutation {k} took {:?}",
                t.elapsed()
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
