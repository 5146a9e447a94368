//! The example datasets under `examples/lm` are exactly what `rein lm example-data`
//! generates (so they can be rebuilt bit for bit), and every one reads as a prompt or
//! preference file.

use std::path::Path;

#[test]
fn shipped_examples_equal_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lm");
    for (rel, text) in rein_lm::tasks::examples::all_files() {
        let path = root.join(&rel);
        let shipped = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `rein lm example-data`)", path.display()));
        assert!(shipped == text, "{rel} differs from the generator");
        if rel.ends_with("preferences.jsonl") {
            assert_eq!(
                rein_lm::rl::reward_model::read_preferences(&path, None)
                    .unwrap()
                    .len(),
                256
            );
        } else {
            assert!(!rein_lm::rl::reward::read_prompts(&path).unwrap().is_empty());
        }
    }
}

/// The translation references follow the grammar: adjectives after the noun, agreeing with
/// its article (checked on every example).
#[test]
fn translation_examples_agree_in_gender() {
    for r in rein_lm::tasks::examples::translation(200, 9) {
        let fr = &r.references[0];
        assert!(!fr.contains("la chat") && !fr.contains("le maison"), "{fr}");
        assert!(
            !fr.contains("la voiture petit ") && !fr.contains("le chien petite"),
            "{fr}"
        );
    }
}
