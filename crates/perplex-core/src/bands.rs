//! Opt-in interpretation labels for a perplexity ("excellent", "good", …).
//!
//! The default bands are the usual rule of thumb of popular perplexity
//! guides: excellent up to 30, good up to 60, acceptable up to 100, poor
//! above. Perplexity depends on the
//! tokenizer and on the text, so a label compares like with like only: the
//! same tokenizer on the same kind of text.

use serde::{Deserialize, Serialize};

/// The caveat every label carries.
pub const CAVEAT: &str = "perplexity depends on the tokenizer and the text: labels compare \
                          like with like only (same tokenizer, same kind of text)";

/// Named bands of perplexity, by upper bound (the last one has none).
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    /// `(name, upper bound)`, bounds ascending; the last band is unbounded.
    bands: Vec<(String, Option<f64>)>,
}

/// A perplexity's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interpretation {
    /// The band's name.
    pub label: String,
    /// The band, e.g. `30-60` or `100+`.
    pub band: String,
    /// [`CAVEAT`].
    pub caveat: String,
}

impl Default for Bands {
    fn default() -> Self {
        Bands::parse("excellent:30,good:60,acceptable:100,poor").expect("valid default bands")
    }
}

impl Bands {
    /// Parses `name:bound,name:bound,…,name` (bounds ascending, the last
    /// band unbounded), or just three bounds `a,b,c` for the default names.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        let named: Vec<(String, Option<f64>)> = if items.iter().all(|i| i.parse::<f64>().is_ok()) {
            if items.len() != 3 {
                return Err(format!(
                    "`{spec}`: give three bounds (for excellent, good, acceptable, poor) or \
                     name:bound pairs"
                ));
            }
            let names = ["excellent", "good", "acceptable", "poor"];
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        n.to_string(),
                        items.get(i).map(|b| b.parse().expect("checked")),
                    )
                })
                .collect()
        } else {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let last = i + 1 == items.len();
                match (item.split_once(':'), last) {
                    (Some((name, bound)), false) => {
                        let b: f64 = bound
                            .parse()
                            .map_err(|_| format!("`{item}`: `{bound}` is not a number"))?;
                        out.push((name.to_string(), Some(b)));
                    }
                    (None, true) => out.push((item.to_string(), None)),
                    (Some(_), true) => {
                        return Err(format!("`{item}`: the last band has no upper bound"))
                    }
                    (None, false) => return Err(format!("`{item}`: expected name:bound")),
                }
            }
            out
        };
        let bounds: Vec<f64> = named.iter().filter_map(|(_, b)| *b).collect();
        if named.len() < 2
            || bounds.iter().any(|b| !(b.is_finite() && *b > 0.0))
            || bounds.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "`{spec}`: bounds must be positive and ascending, with at least two bands"
            ));
        }
        Ok(Bands { bands: named })
    }

    /// The label of `perplexity`.
    pub fn label(&self, perplexity: f64) -> Interpretation {
        let mut lower = 0.0;
        for (name, bound) in &self.bands {
            match bound {
                Some(b) if perplexity <= *b => {
                    return Interpretation {
                        label: name.clone(),
                        band: format!("{lower}-{b}"),
                        caveat: CAVEAT.into(),
                    }
                }
                Some(b) => lower = *b,
                None => break,
            }
        }
        let (name, _) = self.bands.last().expect("at least two bands");
        Interpretation {
            label: name.clone(),
            band: format!("{lower}+"),
            caveat: CAVEAT.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_of_thumb_bands() {
        let b = Bands::default();
        assert_eq!(b.label(12.0).label, "excellent");
        assert_eq!(b.label(30.0).band, "0-30");
        assert_eq!(b.label(45.0).label, "good");
        assert_eq!(b.label(99.0).label, "acceptable");
        let poor = b.label(1500.0);
        assert_eq!((poor.label.as_str(), poor.band.as_str()), ("poor", "100+"));
        assert_eq!(Bands::parse("30,60,100").unwrap(), b);
    }

    #[test]
    fn custom_bands_and_errors() {
        let b = Bands::parse("fine:8,meh").unwrap();
        assert_eq!(b.label(9.0).label, "meh");
        assert!(Bands::parse("a:5,b:4,c").is_err());
        assert!(Bands::parse("10,20").is_err());
        assert!(Bands::parse("a:x,b").is_err());
    }
}
