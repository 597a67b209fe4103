//! Paired comparison of models on the same scored tokens.
//!
//! Three layers, each usable alone:
//! - [`PositionReduction`]: one scored position's logits under a base model
//!   and others, folded in vocabulary tiles (streaming log-sum-exp), giving
//!   every model's NLL and argmax and, per other model, the KL divergence
//!   `KL(P_base ‖ P_other)`, top-1 agreement and `Δp` of the correct token;
//! - [`PairStats`]: a mergeable accumulator of those per-token values, with
//!   per-document and per-window sums for the bootstrap;
//! - [`PairStats::summary`]: the numbers a person reads, with uncertainties,
//!   and a verdict.
//!
//! Formulas (`b` base, `o` other, `l` logits, `lse` log-sum-exp, `t` target):
//! - `nll = lse − l[t]`, `p(t) = exp(−nll)`;
//! - `KL = Σ_v p_b(v)·(l_b(v) − l_o(v)) − lse_b + lse_o`, the sum folded as
//!   `Σ exp(l_b − m_b)·(l_b − l_o) / Σ exp(l_b − m_b)`: exactly 0 for
//!   identical logits;
//! - `Δp = p_o(t) − p_b(t)`, `Δnll = nll_o − nll_b` (negative: the other
//!   model is better);
//! - percentiles are numpy's default (linear interpolation between order
//!   statistics); standard errors use the `n − 1` variance.

use serde::{Deserialize, Serialize};

use crate::accum::Z_95;
use crate::lm::TokenScore;

/// The percentiles reported for KL divergence and `Δp`, highest first
/// (llama.cpp's set).
pub const PERCENTILES: [f64; 9] = [99.9, 99.0, 95.0, 90.0, 50.0, 10.0, 5.0, 1.0, 0.1];

/// Resamples of the paired bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Seed of the paired bootstrap: fixed, so reports are reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x005e_ed0f_be7a;

// ---------------------------------------------------------------------------
// Per position

#[derive(Debug, Clone, Copy)]
struct Row {
    max: f32,
    /// `Σ exp(l − max)`, each exp in f64.
    sum: f64,
    argmax: u32,
    target: f32,
}

impl Row {
    const EMPTY: Row = Row {
        max: f32::NEG_INFINITY,
        sum: 0.0,
        argmax: 0,
        target: f32::NAN,
    };

    /// `(tile max, its index)`; ties go to the lowest id.
    fn tile_max(row: &[f32]) -> (f32, usize) {
        let mut best = (f32::NEG_INFINITY, 0);
        for (i, &l) in row.iter().enumerate() {
            if l > best.0 {
                best = (l, i);
            }
        }
        best
    }

    /// Moves the running max to include `tile_max`; returns the factor the
    /// old sums must be multiplied by.
    fn rebase(&mut self, (tile_max, arg): (f32, usize), first: u32) -> f64 {
        if tile_max > self.max {
            let scale = if self.max == f32::NEG_INFINITY {
                0.0
            } else {
                (f64::from(self.max) - f64::from(tile_max)).exp()
            };
            self.max = tile_max;
            self.argmax = first + arg as u32;
            scale
        } else {
            1.0
        }
    }

    fn lse(&self) -> f64 {
        f64::from(self.max) + self.sum.ln()
    }

    fn nll(&self) -> f64 {
        self.lse() - f64::from(self.target)
    }
}

/// One scored position's logits under a base model (index 0) and other
/// models, reduced across vocabulary tiles without keeping a row.
///
/// A logit of `-inf` is a probability of zero: it takes no part in any sum.
/// Where it is the target's, or where another model gives zero to a token
/// the base does not, the position has no finite NLL or KL divergence and
/// [`finish`](Self::finish) says so ([`Unscorable`]).
#[derive(Debug, Clone)]
pub struct PositionReduction {
    rows: Vec<Row>,
    /// Per other model, `Σ exp(l_b − m_b)·(l_b − l_o)`.
    cross: Vec<f64>,
    /// The first NaN or `+inf` logit seen: `(model, value)`.
    bad: Option<(usize, f32)>,
    /// The first `(other model, token)` of probability zero under the other
    /// model but not under the base: an infinite KL divergence.
    unbounded: Option<(usize, u32)>,
}

/// Why a compared position has no finite result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unscorable {
    /// A NaN or `+inf` logit, a row of nothing but `-inf`, or an NLL that
    /// overflowed, under `model` (0 is the base).
    NonFinite {
        /// The model.
        model: usize,
        /// The value.
        value: f64,
    },
    /// `model` gives the target probability zero.
    ZeroProbability {
        /// The model.
        model: usize,
    },
    /// `model` gives probability zero to `token`, which the base does not:
    /// `KL(P_base ‖ P_model)` is infinite.
    InfiniteDivergence {
        /// The other model (never 0).
        model: usize,
        /// The token id.
        token: u32,
    },
}

/// What one scored token says about one pair (other vs base).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairToken {
    /// `nll_other − nll_base`, nats.
    pub dnll: f64,
    /// `KL(P_base ‖ P_other)`, nats.
    pub kl: f64,
    /// `p_other(target) − p_base(target)`.
    pub dp: f64,
    /// Both models' most probable tokens are the same.
    pub agree: bool,
}

/// A finished position: every model's score and every pair's values.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionResult {
    /// Per model, base first.
    pub scores: Vec<TokenScore>,
    /// Per other model (`pairs[k]` is model `k + 1` against the base).
    pub pairs: Vec<PairToken>,
}

impl PositionReduction {
    /// A reduction for `models` models (at least one: the base).
    pub fn new(models: usize) -> Self {
        PositionReduction {
            rows: vec![Row::EMPTY; models.max(1)],
            cross: vec![0.0; models.saturating_sub(1)],
            bad: None,
            unbounded: None,
        }
    }

    /// Folds in the logits of ids `first..first + len`: `tiles[m]` is model
    /// `m`'s row for those ids (all of length `len`).
    pub fn update(&mut self, tiles: &[&[f32]], first: u32, target: u32) {
        debug_assert_eq!(tiles.len(), self.rows.len());
        let spoilt = |l: &&f32| l.is_nan() || **l == f32::INFINITY;
        for (m, tile) in tiles.iter().enumerate() {
            if let Some(&l) = tile.iter().find(spoilt) {
                self.bad.get_or_insert((m, l));
            }
        }
        if self.bad.is_some() {
            return;
        }
        let in_tile = (first..first + tiles[0].len() as u32).contains(&target);
        // the base: its weights exp(l_b − m_b) also weigh the KL sums
        let base = tiles[0];
        let scale = self.rows[0].rebase(Row::tile_max(base), first);
        let m_b = f64::from(self.rows[0].max);
        self.rows[0].sum *= scale;
        for c in &mut self.cross {
            *c *= scale;
        }
        for (v, &lb) in base.iter().enumerate() {
            if lb == f32::NEG_INFINITY {
                continue;
            }
            let w = (f64::from(lb) - m_b).exp();
            self.rows[0].sum += w;
            for (k, (c, other)) in self.cross.iter_mut().zip(&tiles[1..]).enumerate() {
                if other[v] == f32::NEG_INFINITY {
                    self.unbounded.get_or_insert((k + 1, first + v as u32));
                } else {
                    *c += w * (f64::from(lb) - f64::from(other[v]));
                }
            }
        }
        // the same operations in the same order as for the base, so that
        // identical logits give identical sums
        for (row, tile) in self.rows.iter_mut().zip(tiles).skip(1) {
            let scale = row.rebase(Row::tile_max(tile), first);
            let m = f64::from(row.max);
            row.sum *= scale;
            for &l in tile.iter().filter(|&&l| l != f32::NEG_INFINITY) {
                row.sum += (f64::from(l) - m).exp();
            }
        }
        if in_tile {
            for (row, tile) in self.rows.iter_mut().zip(tiles) {
                row.target = tile[(target - first) as usize];
            }
        }
    }

    /// The scores and pair values, or why there are none.
    pub fn finish(&self) -> Result<PositionResult, Unscorable> {
        if let Some((model, l)) = self.bad {
            let value = f64::from(l);
            return Err(Unscorable::NonFinite { model, value });
        }
        for (model, row) in self.rows.iter().enumerate() {
            if row.max == f32::NEG_INFINITY {
                let value = f64::NEG_INFINITY;
                return Err(Unscorable::NonFinite { model, value });
            }
            if row.target == f32::NEG_INFINITY {
                return Err(Unscorable::ZeroProbability { model });
            }
        }
        if let Some((model, token)) = self.unbounded {
            return Err(Unscorable::InfiniteDivergence { model, token });
        }
        let scores: Vec<TokenScore> = self
            .rows
            .iter()
            .map(|r| TokenScore {
                nll: r.nll(),
                argmax: r.argmax,
            })
            .collect();
        if let Some((model, s)) = scores.iter().enumerate().find(|(_, s)| !s.nll.is_finite()) {
            let value = s.nll;
            return Err(Unscorable::NonFinite { model, value });
        }
        let base = &self.rows[0];
        let pairs = self
            .cross
            .iter()
            .zip(&self.rows[1..])
            .zip(&scores[1..])
            .map(|((cross, row), score)| PairToken {
                dnll: score.nll - scores[0].nll,
                kl: cross / base.sum - base.lse() + row.lse(),
                dp: (-score.nll).exp() - (-scores[0].nll).exp(),
                agree: row.argmax == base.argmax,
            })
            .collect();
        Ok(PositionResult { scores, pairs })
    }
}

// ---------------------------------------------------------------------------
// Accumulators

/// Count, mean and squared deviations (Welford), mergeable (Chan et al.).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    /// Values seen.
    pub count: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Adds a value.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Merges another accumulator.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
    }

    /// The mean, when anything was seen.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Standard error of the mean (`n − 1` variance), from two values on.
    pub fn stderr(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64 / self.count as f64).sqrt())
    }
}

/// Co-moments of two paired series, for their Pearson correlation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct CoMoments {
    n: f64,
    mx: f64,
    my: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

impl CoMoments {
    fn push(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        let dx = x - self.mx;
        let dy = y - self.my;
        self.mx += dx / self.n;
        self.my += dy / self.n;
        self.sxx += dx * (x - self.mx);
        self.syy += dy * (y - self.my);
        self.sxy += dx * (y - self.my);
    }

    fn merge(&mut self, o: &CoMoments) {
        if o.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let dx = o.mx - self.mx;
        let dy = o.my - self.my;
        let f = self.n * o.n / n;
        self.sxx += o.sxx + dx * dx * f;
        self.syy += o.syy + dy * dy * f;
        self.sxy += o.sxy + dx * dy * f;
        self.mx += dx * o.n / n;
        self.my += dy * o.n / n;
        self.n = n;
    }

    fn correlation(&self) -> Option<f64> {
        let r = self.sxy / (self.sxx * self.syy).sqrt();
        (self.n > 1.0 && r.is_finite()).then_some(r)
    }
}

/// Sums of one resampling unit (a document or a window).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct UnitSums {
    /// Scored tokens.
    pub count: u64,
    /// `Σ nll_base`.
    pub base: f64,
    /// `Σ nll_other`.
    pub other: f64,
}

impl UnitSums {
    fn add(&mut self, base: f64, other: f64) {
        self.count += 1;
        self.base += base;
        self.other += other;
    }
}

/// Everything kept about one pair over a run. Merge with [`PairStats::merge`].
#[derive(Debug, Clone, Default)]
pub struct PairStats {
    dnll: Moments,
    kl: Moments,
    kl_values: Vec<f64>,
    dp_values: Vec<f64>,
    dp_squares: f64,
    agree: u64,
    nll: CoMoments,
    /// Per document index.
    documents: Vec<UnitSums>,
    /// Per window, in scoring order.
    windows: Vec<UnitSums>,
}

impl PairStats {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new window (a bootstrap unit when there is one document).
    pub fn begin_window(&mut self) {
        self.windows.push(UnitSums::default());
    }

    /// Adds one scored token of document `doc` with the two models' NLLs.
    pub fn push(&mut self, doc: usize, base_nll: f64, t: &PairToken) {
        self.dnll.push(t.dnll);
        self.kl.push(t.kl);
        self.kl_values.push(t.kl);
        self.dp_values.push(t.dp);
        self.dp_squares += t.dp * t.dp;
        self.agree += u64::from(t.agree);
        let other_nll = base_nll + t.dnll;
        self.nll.push(base_nll, other_nll);
        if self.documents.len() <= doc {
            self.documents.resize(doc + 1, UnitSums::default());
        }
        self.documents[doc].add(base_nll, other_nll);
        if self.windows.is_empty() {
            self.begin_window();
        }
        self.windows
            .last_mut()
            .expect("a window was begun")
            .add(base_nll, other_nll);
    }

    /// Merges another accumulator (documents by index, windows appended).
    pub fn merge(&mut self, o: &PairStats) {
        self.dnll.merge(&o.dnll);
        self.kl.merge(&o.kl);
        self.kl_values.extend_from_slice(&o.kl_values);
        self.dp_values.extend_from_slice(&o.dp_values);
        self.dp_squares += o.dp_squares;
        self.agree += o.agree;
        self.nll.merge(&o.nll);
        if self.documents.len() < o.documents.len() {
            self.documents
                .resize(o.documents.len(), UnitSums::default());
        }
        for (a, b) in self.documents.iter_mut().zip(&o.documents) {
            a.count += b.count;
            a.base += b.base;
            a.other += b.other;
        }
        self.windows.extend_from_slice(&o.windows);
    }

    /// Scored tokens.
    pub fn tokens(&self) -> u64 {
        self.dnll.count
    }

    /// Per-document sums, by document index.
    pub fn documents(&self) -> &[UnitSums] {
        &self.documents
    }

    /// The summary at `confidence` (e.g. 0.95), or `None` when no token was
    /// scored.
    pub fn summary(&self, confidence: f64) -> Option<PairSummary> {
        let n = self.tokens();
        if n == 0 {
            return None;
        }
        let z = normal_quantile(0.5 + confidence / 2.0);
        let interval = |m: &Moments| {
            let value = m.mean().unwrap_or(0.0);
            let stderr = m.stderr();
            Interval {
                value,
                stderr,
                ci: stderr.map(|se| [value - z * se, value + z * se]),
            }
        };
        let dnll = interval(&self.dnll);
        let agreement = self.agree as f64 / n as f64;
        let agreement_se = (n > 1).then(|| (agreement * (1.0 - agreement) / n as f64).sqrt());
        let base_sum: f64 = self.documents.iter().map(|d| d.base).sum();
        let other_sum: f64 = self.documents.iter().map(|d| d.other).sum();
        let base_ppl = (base_sum / n as f64).exp();
        let other_ppl = (other_sum / n as f64).exp();
        let docs: Vec<UnitSums> = self
            .documents
            .iter()
            .copied()
            .filter(|d| d.count > 0)
            .collect();
        let (unit, units) = if docs.len() >= 2 {
            (BootstrapUnit::Document, docs)
        } else {
            (
                BootstrapUnit::Window,
                self.windows
                    .iter()
                    .copied()
                    .filter(|w| w.count > 0)
                    .collect(),
            )
        };
        let bootstrap = bootstrap(&units, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, confidence).map(
            |(stderr, ci)| Bootstrap {
                unit,
                units: units.len(),
                resamples: BOOTSTRAP_RESAMPLES,
                seed: BOOTSTRAP_SEED,
                stderr,
                ci,
            },
        );
        let verdict = Verdict::decide(&dnll, bootstrap.as_ref(), confidence);
        Some(PairSummary {
            tokens: n,
            base_perplexity: base_ppl,
            other_perplexity: other_ppl,
            improvement_percent: (base_ppl - other_ppl) / base_ppl * 100.0,
            mean_nll_difference: dnll,
            bootstrap,
            nll_correlation: self.nll.correlation(),
            kl_divergence: Spread {
                mean: self.kl.mean().unwrap_or(0.0),
                stderr: self.kl.stderr(),
                max: self
                    .kl_values
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max),
                percentiles: percentiles(&self.kl_values),
            },
            top1_agreement: Interval {
                value: agreement,
                stderr: agreement_se,
                ci: agreement_se.map(|se| [agreement - z * se, agreement + z * se]),
            },
            delta_p: DeltaP {
                mean: self.dp_values.iter().sum::<f64>() / n as f64,
                rms: (self.dp_squares / n as f64).sqrt(),
                percentiles: percentiles(&self.dp_values),
            },
            verdict,
        })
    }
}

// ---------------------------------------------------------------------------
// Summary

/// An estimate with its standard error and two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub value: f64,
    /// Its standard error (`None` from fewer than two values).
    pub stderr: Option<f64>,
    /// `value ± z·stderr` at the report's confidence.
    pub ci: Option<[f64; 2]>,
}

/// What the bootstrap resampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapUnit {
    /// Whole documents (two or more scored documents).
    Document,
    /// Windows (one document, e.g. a joined corpus).
    Window,
}

/// The paired bootstrap of the mean NLL difference over units (documents,
/// or windows), which keeps the correlation of neighbouring tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// What was resampled.
    pub unit: BootstrapUnit,
    /// How many units there were.
    pub units: usize,
    /// Resamples drawn.
    pub resamples: usize,
    /// RNG seed.
    pub seed: u64,
    /// Standard deviation of the resampled statistic.
    pub stderr: f64,
    /// Percentile interval of `Σ Δnll / Σ tokens` over resamples.
    pub ci: [f64; 2],
}

/// A distribution over scored tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub stderr: Option<f64>,
    /// Largest value.
    pub max: f64,
    /// At [`PERCENTILES`].
    pub percentiles: Vec<Percentile>,
}

/// `Δp` of the correct token over scored tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaP {
    /// Mean.
    pub mean: f64,
    /// Root mean square.
    pub rms: f64,
    /// At [`PERCENTILES`].
    pub percentiles: Vec<Percentile>,
}

/// One percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// Percent, e.g. `99.9`.
    pub percent: f64,
    /// Value.
    pub value: f64,
}

/// The outcome a person acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The other model predicts the text better (lower NLL).
    Better,
    /// The other model predicts the text worse.
    Worse,
    /// The interval includes no change.
    NoSignificantDifference,
}

/// The verdict and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Better, worse, or no significant difference.
    pub outcome: Outcome,
    /// Confidence of the interval used.
    pub confidence: f64,
    /// Which interval decided: `document bootstrap`, `window bootstrap` or
    /// `token-level` (when there is a single unit).
    pub basis: String,
}

impl Verdict {
    fn decide(dnll: &Interval, bootstrap: Option<&Bootstrap>, confidence: f64) -> Verdict {
        match (bootstrap, dnll.ci) {
            (Some(b), _) => Verdict::from_interval(
                Some(b.ci),
                &format!("{} bootstrap", unit_name(b.unit)),
                confidence,
            ),
            (None, ci) => Verdict::from_interval(ci, "token-level", confidence),
        }
    }

    /// The verdict on an interval of "other minus base" (lower is better).
    pub fn from_interval(ci: Option<[f64; 2]>, basis: &str, confidence: f64) -> Verdict {
        let basis = basis.to_string();
        let outcome = match ci {
            Some([_, hi]) if hi < 0.0 => Outcome::Better,
            Some([lo, _]) if lo > 0.0 => Outcome::Worse,
            _ => Outcome::NoSignificantDifference,
        };
        Verdict {
            outcome,
            confidence,
            basis,
        }
    }
}

fn unit_name(u: BootstrapUnit) -> &'static str {
    match u {
        BootstrapUnit::Document => "document",
        BootstrapUnit::Window => "window",
    }
}

/// One pair's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    /// Scored tokens (the same for both models).
    pub tokens: u64,
    /// The base model's perplexity on these tokens.
    pub base_perplexity: f64,
    /// The other model's.
    pub other_perplexity: f64,
    /// `(base − other) / base × 100`: positive when the other model is better.
    pub improvement_percent: f64,
    /// Mean `nll_other − nll_base` (= ln of the perplexity ratio), tokens
    /// taken as independent (llama.cpp's `ln(PPL(Q)/PPL(base))`).
    pub mean_nll_difference: Interval,
    /// The same mean from a paired bootstrap over documents or windows.
    pub bootstrap: Option<Bootstrap>,
    /// Pearson correlation of the two models' per-token NLLs.
    pub nll_correlation: Option<f64>,
    /// `KL(P_base ‖ P_other)` per token.
    pub kl_divergence: Spread,
    /// Fraction of tokens where both models' most probable token is the same.
    pub top1_agreement: Interval,
    /// `p_other(correct) − p_base(correct)`.
    pub delta_p: DeltaP,
    /// Better, worse or no significant difference.
    pub verdict: Verdict,
}

/// Two models with different tokenizers compared by bits per byte, which
/// does not depend on the tokenizer: each document's bits over its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BitsPerByteSummary {
    /// Bytes of the documents both models scored whole.
    pub bytes: u64,
    /// The base's bits per byte on them.
    pub base_bits_per_byte: f64,
    /// The other model's.
    pub other_bits_per_byte: f64,
    /// `(base − other) / base × 100`: positive when the other model is better.
    pub improvement_percent: f64,
    /// Paired bootstrap over documents of `Σ (bits_o − bits_b) / Σ bytes`.
    pub bootstrap: Option<Bootstrap>,
    /// Better, worse or no significant difference.
    pub verdict: Verdict,
}

impl BitsPerByteSummary {
    /// From per-document `(bytes, bits_base, bits_other)` (documents both
    /// models scored whole); `None` when there are no bytes.
    pub fn new(documents: &[UnitSums], confidence: f64) -> Option<Self> {
        let bytes: u64 = documents.iter().map(|d| d.count).sum();
        if bytes == 0 {
            return None;
        }
        let (b, o) = (
            documents.iter().map(|d| d.base).sum::<f64>() / bytes as f64,
            documents.iter().map(|d| d.other).sum::<f64>() / bytes as f64,
        );
        let boot = bootstrap(documents, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, confidence).map(
            |(stderr, ci)| Bootstrap {
                unit: BootstrapUnit::Document,
                units: documents.len(),
                resamples: BOOTSTRAP_RESAMPLES,
                seed: BOOTSTRAP_SEED,
                stderr,
                ci,
            },
        );
        let verdict = match &boot {
            Some(boot) => Verdict::from_interval(Some(boot.ci), "document bootstrap", confidence),
            None => Verdict::from_interval(None, "one document: no interval", confidence),
        };
        Some(BitsPerByteSummary {
            bytes,
            base_bits_per_byte: b,
            other_bits_per_byte: o,
            improvement_percent: (b - o) / b * 100.0,
            bootstrap: boot,
            verdict,
        })
    }
}

/// numpy's default percentile: linear interpolation at rank `q/100·(n−1)`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn percentiles(values: &[f64]) -> Vec<Percentile> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    PERCENTILES
        .iter()
        .map(|&percent| Percentile {
            percent,
            value: percentile(&sorted, percent),
        })
        .collect()
}

/// splitmix64: a small, fixed, well-mixed generator (no dependency).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is < n / 2^64).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// Paired bootstrap of `Σ (other − base) / Σ count` over `units`:
/// `(standard deviation, percentile interval)`, or `None` with fewer than
/// two units.
pub fn bootstrap(
    units: &[UnitSums],
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> Option<(f64, [f64; 2])> {
    if units.len() < 2 || resamples < 2 {
        return None;
    }
    let mut rng = SplitMix(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut diff, mut count) = (0.0, 0u64);
            for _ in 0..units.len() {
                let u = &units[rng.below(units.len())];
                diff += u.other - u.base;
                count += u.count;
            }
            diff / count as f64
        })
        .collect();
    let mut m = Moments::default();
    stats.iter().for_each(|&s| m.push(s));
    let sd = m.stderr()? * (resamples as f64).sqrt();
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0 * 100.0;
    Some((
        sd,
        [percentile(&stats, tail), percentile(&stats, 100.0 - tail)],
    ))
}

/// The standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9; exact [`Z_95`] at 0.975).
pub fn normal_quantile(p: f64) -> f64 {
    if (p - 0.975).abs() < 1e-15 {
        return Z_95;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// KL, NLLs, Δp and agreement straight from two full rows, in f64.
    fn direct(b: &[f32], o: &[f32], t: usize) -> (f64, f64, f64, f64, bool) {
        let lse = |r: &[f32]| {
            let m = r
                .iter()
                .fold(f64::NEG_INFINITY, |a, &x| a.max(f64::from(x)));
            m + r
                .iter()
                .map(|&x| (f64::from(x) - m).exp())
                .sum::<f64>()
                .ln()
        };
        let (lb, lo) = (lse(b), lse(o));
        let kl: f64 = b
            .iter()
            .zip(o)
            .map(|(&x, &y)| {
                let (lpb, lpo) = (f64::from(x) - lb, f64::from(y) - lo);
                lpb.exp() * (lpb - lpo)
            })
            .sum();
        let argmax = |r: &[f32]| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (i, &x)| if x > a.1 { (i, x) } else { a },
                )
                .0
        };
        let (nb, no) = (lb - f64::from(b[t]), lo - f64::from(o[t]));
        (
            kl,
            nb,
            no,
            (-no).exp() - (-nb).exp(),
            argmax(b) == argmax(o),
        )
    }

    #[test]
    fn tiled_reduction_equals_the_direct_formulas() {
        let v = 1000;
        let base = lcg(1, v, 6.0);
        // a close model and a far one
        let near: Vec<f32> = base
            .iter()
            .zip(lcg(2, v, 0.3))
            .map(|(a, b)| a + b)
            .collect();
        let far = lcg(3, v, 6.0);
        for (tile, target) in [(v, 17), (64, 999), (7, 0), (333, 500)] {
            let mut r = PositionReduction::new(3);
            for first in (0..v).step_by(tile) {
                let end = (first + tile).min(v);
                let tiles = [&base[first..end], &near[first..end], &far[first..end]];
                r.update(&tiles, first as u32, target);
            }
            let out = r.finish().unwrap();
            for (k, other) in [&near, &far].into_iter().enumerate() {
                let (kl, nb, no, dp, agree) = direct(&base, other, target as usize);
                let p = out.pairs[k];
                assert!(
                    (p.kl - kl).abs() <= 1e-10 * kl.max(1e-3),
                    "{} vs {kl}",
                    p.kl
                );
                assert!((out.scores[0].nll - nb).abs() < 1e-10);
                assert!((p.dnll - (no - nb)).abs() < 1e-10);
                assert!((p.dp - dp).abs() < 1e-12);
                assert_eq!(p.agree, agree);
            }
        }
    }

    #[test]
    fn identical_models_have_zero_kl_and_full_agreement() {
        let base = lcg(4, 300, 5.0);
        let mut r = PositionReduction::new(2);
        for first in (0..300).step_by(64) {
            let end = (first + 64).min(300);
            r.update(&[&base[first..end], &base[first..end]], first as u32, 42);
        }
        let p = r.finish().unwrap().pairs[0];
        assert_eq!((p.kl, p.dnll, p.dp, p.agree), (0.0, 0.0, 0.0, true));
    }

    #[test]
    fn non_finite_logits_name_the_model() {
        let mut r = PositionReduction::new(2);
        r.update(&[&[0.0, 1.0], &[f32::NAN, 0.0]], 0, 1);
        let err = r.finish().unwrap_err();
        assert!(matches!(err, Unscorable::NonFinite { model: 1, value } if value.is_nan()));
    }

    #[test]
    fn minus_infinity_is_probability_zero() {
        let ninf = f32::NEG_INFINITY;
        // tokens both models rule out change nothing
        let mut with_zeros = PositionReduction::new(2);
        with_zeros.update(&[&[ninf, 0.5, 1.0], &[ninf, 1.0, 0.0]], 0, 2);
        with_zeros.update(&[&[ninf], &[ninf]], 3, 2);
        let mut without = PositionReduction::new(2);
        without.update(&[&[0.5, 1.0], &[1.0, 0.0]], 1, 2);
        let (a, b) = (with_zeros.finish().unwrap(), without.finish().unwrap());
        assert_eq!(a.pairs, b.pairs);
        assert_eq!(a.scores[0].nll, b.scores[0].nll);
        assert_eq!(a.scores[1].nll, b.scores[1].nll);
        // the target ruled out, by either model
        let mut r = PositionReduction::new(2);
        r.update(&[&[0.0, 1.0], &[0.0, ninf]], 0, 1);
        assert_eq!(r.finish(), Err(Unscorable::ZeroProbability { model: 1 }));
        // a token the base finds possible and the other rules out: KL is infinite
        let mut r = PositionReduction::new(3);
        r.update(&[&[0.0, 1.0], &[0.0, 1.0], &[ninf, 1.0]], 0, 1);
        let err = r.finish().unwrap_err();
        assert_eq!(err, Unscorable::InfiniteDivergence { model: 2, token: 0 });
        // the other way round is finite: the other model spreads mass the base does not
        let mut r = PositionReduction::new(2);
        r.update(&[&[ninf, 1.0], &[0.0, 1.0]], 0, 1);
        assert!(r.finish().unwrap().pairs[0].kl > 0.0);
    }

    #[test]
    fn percentiles_follow_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 0.1]) = [3, 7.6, 1.004]
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&x, 50.0), 3.0);
        assert!((percentile(&x, 90.0) - 7.6).abs() < 1e-12);
        assert!((percentile(&x, 0.1) - 1.004).abs() < 1e-12);
    }

    #[test]
    fn normal_quantiles() {
        assert_eq!(normal_quantile(0.975), Z_95);
        assert!((normal_quantile(0.995) - 2.575_829_303_548_901).abs() < 1e-8);
        assert!((normal_quantile(0.95) - 1.644_853_626_951_472).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
    }

    #[test]
    fn merging_equals_pushing_everything_in_one() {
        let tokens: Vec<(usize, f64, PairToken)> = (0..200)
            .map(|i| {
                let x = i as f64;
                (
                    i / 50,
                    (x * 0.37).sin().abs() * 5.0,
                    PairToken {
                        dnll: (x * 0.11).cos() * 0.3 - 0.05,
                        kl: (x * 0.07).sin().abs() * 0.02,
                        dp: (x * 0.13).sin() * 0.1,
                        agree: i % 7 != 0,
                    },
                )
            })
            .collect();
        let mut whole = PairStats::new();
        let mut parts = [PairStats::new(), PairStats::new()];
        for (i, (doc, nll, t)) in tokens.iter().enumerate() {
            if i % 25 == 0 {
                whole.begin_window();
                parts[i / 100].begin_window();
            }
            whole.push(*doc, *nll, t);
            parts[i / 100].push(*doc, *nll, t);
        }
        let mut merged = parts[0].clone();
        merged.merge(&parts[1]);
        let (a, b) = (whole.summary(0.95).unwrap(), merged.summary(0.95).unwrap());
        assert_eq!(a.tokens, 200);
        assert!((a.mean_nll_difference.value - b.mean_nll_difference.value).abs() < 1e-12);
        assert!((a.kl_divergence.mean - b.kl_divergence.mean).abs() < 1e-12);
        assert!((a.nll_correlation.unwrap() - b.nll_correlation.unwrap()).abs() < 1e-12);
        assert_eq!(a.bootstrap, b.bootstrap);
        assert_eq!(a.bootstrap.as_ref().unwrap().unit, BootstrapUnit::Document);
        assert_eq!(a.kl_divergence.percentiles, b.kl_divergence.percentiles);
    }

    #[test]
    fn a_clear_gain_is_better_and_noise_is_not() {
        let mut gain = PairStats::new();
        let mut noise = PairStats::new();
        for i in 0..400 {
            let doc = i / 20;
            let wobble = ((i * 7919) % 101) as f64 / 100.0 - 0.5;
            let t = |dnll: f64| PairToken {
                dnll,
                kl: 0.01,
                dp: 0.0,
                agree: true,
            };
            gain.push(doc, 3.0, &t(-0.2 + 0.1 * wobble));
            noise.push(doc, 3.0, &t(wobble));
        }
        assert_eq!(gain.summary(0.95).unwrap().verdict.outcome, Outcome::Better);
        let n = noise.summary(0.95).unwrap();
        assert_eq!(n.verdict.outcome, Outcome::NoSignificantDifference);
        assert_eq!(n.verdict.basis, "document bootstrap");
    }
}
