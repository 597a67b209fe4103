//! What a perplexity curve says about a training run, in plain words.
//!
//! Each [`Diagnosis`] names its evidence (the numbers that triggered it) and
//! the checks popular perplexity guides suggest for that symptom. "Beyond noise"
//! means beyond `z·√(se_a² + se_b²)` of the two mean NLLs involved (z for a
//! two-sided 95 % interval): the standard errors treat tokens as
//! independent, so this is a screen, not a test.

use serde::{Deserialize, Serialize};

use crate::accum::Z_95;
use crate::report::SweepPoint;

/// One finding about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Stable name: `not-decreasing`, `rising-while-loss-falls`,
    /// `untrained-adapter`, `far-above-base`, `tokenizer-mismatch`.
    pub code: String,
    /// What was found, with the numbers.
    pub message: String,
    /// What to check, from popular perplexity guides' troubleshooting.
    pub checks: Vec<String>,
}

/// How the curve is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnoseSettings {
    /// Checkpoints over which perplexity must have fallen beyond noise.
    pub window: usize,
    /// A checkpoint this many times the base's perplexity is "far above".
    pub far_above_base: f64,
}

impl Default for DiagnoseSettings {
    fn default() -> Self {
        DiagnoseSettings {
            window: 3,
            far_above_base: 1.5,
        }
    }
}

/// `(difference of mean NLL b − a, its noise band)` of two points.
fn change(a: &SweepPoint, b: &SweepPoint) -> Option<(f64, f64)> {
    let (na, nb) = (a.mean_nll?, b.mean_nll?);
    let (sa, sb) = (
        a.mean_nll_stderr.unwrap_or(0.0),
        b.mean_nll_stderr.unwrap_or(0.0),
    );
    Some((nb - na, Z_95 * (sa * sa + sb * sb).sqrt()))
}

fn ppl(p: &SweepPoint) -> String {
    p.perplexity
        .map_or_else(|| "-".into(), |x| format!("{x:.4}"))
}

/// The diagnoses of a curve (points by step), given the base's point (if
/// any) and the codes of the run's warnings (e.g. `untrained-lora`).
pub fn diagnose(
    points: &[SweepPoint],
    base: Option<&SweepPoint>,
    untrained: &[String],
    settings: DiagnoseSettings,
) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let k = settings.window.max(2);
    if points.len() >= k {
        let (first, last) = (&points[points.len() - k], &points[points.len() - 1]);
        if let Some((d, noise)) = change(first, last) {
            if d >= -noise {
                out.push(Diagnosis {
                    code: "not-decreasing".into(),
                    message: format!(
                        "perplexity has not fallen beyond noise over the last {k} checkpoints: \
                         {} at step {} -> {} at step {} (mean NLL {d:+.4} nats, noise ±{noise:.4})",
                        ppl(first),
                        first.step,
                        ppl(last),
                        last.step
                    ),
                    checks: vec![
                        "learning rate too high or too low: try other values (e.g. 2e-4 for LoRA)"
                            .into(),
                        "target modules: model.print_trainable_parameters() should be > 0".into(),
                        "enough training data for the steps taken".into(),
                        "whether the training loss decreases; if it does and perplexity does not, \
                         check the evaluation data"
                            .into(),
                    ],
                });
            }
        }
    }
    let best = points
        .iter()
        .filter(|p| p.mean_nll.is_some())
        .min_by(|a, b| a.mean_nll.partial_cmp(&b.mean_nll).expect("finite NLLs"));
    if let (Some(best), Some(last)) = (best, points.last()) {
        let loss_fell = matches!((best.train_loss, last.train_loss), (Some(a), Some(b)) if b < a);
        if let Some((d, noise)) = change(best, last) {
            if last.step > best.step && d > noise && loss_fell {
                out.push(Diagnosis {
                    code: "rising-while-loss-falls".into(),
                    message: format!(
                        "perplexity rose beyond noise from {} at step {} to {} at step {} while \
                         the training loss fell from {:.4} to {:.4}: the model is overfitting, or \
                         the evaluation text is unlike the training data",
                        ppl(best),
                        best.step,
                        ppl(last),
                        last.step,
                        best.train_loss.unwrap_or(f64::NAN),
                        last.train_loss.unwrap_or(f64::NAN)
                    ),
                    checks: vec![
                        format!(
                            "keep the checkpoint of step {} (the lowest perplexity)",
                            best.step
                        ),
                        "ensure the evaluation data matches the training domain".into(),
                        "more data, fewer steps, or a lower learning rate".into(),
                    ],
                });
            }
        }
    }
    for path in untrained {
        out.push(Diagnosis {
            code: "untrained-adapter".into(),
            message: format!(
                "adapter {path} has not changed from its initialisation (every lora_B is zero): \
                 nothing was trained"
            ),
            checks: vec![
                "target modules: model.print_trainable_parameters() should be > 0".into(),
                "that the checkpoint was saved after training steps".into(),
            ],
        });
    }
    if let Some(base) = base {
        for p in points {
            let (Some(a), Some(b)) = (base.perplexity, p.perplexity) else {
                continue;
            };
            let beyond = change(base, p).is_some_and(|(d, noise)| d > noise);
            if b > settings.far_above_base * a && beyond {
                out.push(Diagnosis {
                    code: "far-above-base".into(),
                    message: format!(
                        "step {}: perplexity {b:.4} is {:.1}x the base model's {a:.4} on the same \
                         text",
                        p.step,
                        b / a
                    ),
                    checks: vec![
                        "learning rate too high (training diverged)".into(),
                        "the base model is the one the run started from".into(),
                        "model architecture compatibility".into(),
                    ],
                });
                break;
            }
        }
    }
    let mismatched: Vec<String> = points
        .iter()
        .filter(|p| !p.same_tokens_as_first)
        .map(|p| p.step.to_string())
        .collect();
    if !mismatched.is_empty() {
        out.push(Diagnosis {
            code: "tokenizer-mismatch".into(),
            message: format!(
                "the checkpoints of steps {} tokenise the text differently from the first model: \
                 their perplexities are not comparable",
                mismatched.join(", ")
            ),
            checks: vec![
                "a resized vocabulary or changed special tokens during training".into(),
                "compare by bits per byte instead (perplex compare --bits-per-byte)".into(),
            ],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64, nll: f64, loss: Option<f64>) -> SweepPoint {
        SweepPoint {
            step,
            spec: format!("checkpoint-{step}"),
            perplexity: Some(nll.exp()),
            perplexity_ci95: None,
            mean_nll: Some(nll),
            mean_nll_stderr: Some(0.01),
            scored_tokens: 1000,
            same_tokens_as_first: true,
            change_from_previous_percent: None,
            change_from_base_percent: None,
            train_loss: loss,
            eval_loss: None,
            eval_loss_perplexity: None,
            label: None,
        }
    }

    fn codes(d: &[Diagnosis]) -> Vec<&str> {
        d.iter().map(|d| d.code.as_str()).collect()
    }

    const S: DiagnoseSettings = DiagnoseSettings {
        window: 3,
        far_above_base: 1.5,
    };

    #[test]
    fn a_falling_curve_has_no_diagnosis() {
        let pts: Vec<_> = (1..=5)
            .map(|i| point(i, 4.0 - 0.1 * i as f64, Some(3.0)))
            .collect();
        assert!(diagnose(&pts, None, &[], S).is_empty());
    }

    #[test]
    fn a_flat_curve_is_not_decreasing() {
        let pts: Vec<_> = (1..=4)
            .map(|i| point(i, 3.0 + 0.001 * i as f64, None))
            .collect();
        let d = diagnose(&pts, None, &[], S);
        assert_eq!(codes(&d), ["not-decreasing"]);
        assert!(d[0].message.contains("over the last 3 checkpoints"));
        // too few checkpoints to tell
        assert!(diagnose(&pts[..2], None, &[], S).is_empty());
    }

    #[test]
    fn rising_while_the_loss_falls_is_overfitting() {
        let pts = vec![
            point(1, 3.0, Some(4.0)),
            point(2, 2.5, Some(3.0)),
            point(3, 2.6, Some(2.5)),
            point(4, 2.8, Some(2.0)),
        ];
        let d = diagnose(&pts, None, &[], S);
        assert_eq!(codes(&d), ["not-decreasing", "rising-while-loss-falls"]);
        assert!(d[1].message.contains("step 2"), "{}", d[1].message);
        // the same rise with a rising loss too is not this diagnosis
        let mut up = pts.clone();
        up[3].train_loss = Some(3.5);
        assert!(!codes(&diagnose(&up, None, &[], S)).contains(&"rising-while-loss-falls"));
    }

    #[test]
    fn untrained_adapters_far_bases_and_tokenizers() {
        let pts = vec![point(1, 3.0, None), point(2, 2.0, None)];
        let d = diagnose(&pts, None, &["ckpt-1".into()], S);
        assert_eq!(codes(&d), ["untrained-adapter"]);
        let base = point(0, 1.0, None);
        let d = diagnose(&pts, Some(&base), &[], S);
        assert_eq!(codes(&d), ["far-above-base"]);
        assert!(d[0].message.contains("step 1"));
        let near = point(0, 2.9, None);
        assert!(diagnose(&pts, Some(&near), &[], S).is_empty());
        let mut odd = pts.clone();
        odd[1].same_tokens_as_first = false;
        assert_eq!(codes(&diagnose(&odd, None, &[], S)), ["tokenizer-mismatch"]);
    }
}
