//! What the model's tensors are called: a [`Part`] of the model, named by a
//! [`Namer`] from the family table's names for one format under one root
//! (`model.`, `transformer.`, a text tower's `language_model.model.`, GGUF's
//! none). The loader uses one namer for the store and one for the Hugging
//! Face module tree, which PEFT adapters name whatever the base's format.

use crate::config::{FamilyRules, Root, TensorNames};

/// A part of the model, named differently by each family and format.
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    Embed,
    PosEmbed,
    Norm,
    Head,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    Qkv(usize),
    QNorm(usize),
    KNorm(usize),
    O(usize),
    PostAttnNorm(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    GateUp(usize),
    Down(usize),
    PostFfnNorm(usize),
}

impl Part {
    /// Whether the part is a projection (a linear layer's matrix).
    pub(super) fn is_projection(self) -> bool {
        matches!(
            self,
            Part::Q(_)
                | Part::K(_)
                | Part::V(_)
                | Part::Qkv(_)
                | Part::O(_)
                | Part::Gate(_)
                | Part::Up(_)
                | Part::GateUp(_)
                | Part::Down(_)
        )
    }
}

/// Names the parts of one checkpoint: a family's names in one format, under
/// one root.
#[derive(Debug, Clone, Copy)]
pub(super) struct Namer {
    names: &'static TensorNames,
    root: Root,
}

impl Namer {
    /// The name of `part.suffix` (`weight` or `bias`).
    pub(super) fn name(&self, part: Part, suffix: &str) -> String {
        let n = self.names;
        let (layer, name) = match part {
            Part::Head => return format!("{}.{suffix}", self.root.head),
            Part::Embed => (None, n.embed),
            Part::PosEmbed => (None, n.pos_embed),
            Part::Norm => (None, n.final_norm),
            Part::AttnNorm(i) => (Some(i), n.attn_norm),
            Part::Q(i) => (Some(i), n.q),
            Part::K(i) => (Some(i), n.k),
            Part::V(i) => (Some(i), n.v),
            Part::Qkv(i) => (Some(i), n.qkv),
            Part::QNorm(i) => (Some(i), n.q_norm),
            Part::KNorm(i) => (Some(i), n.k_norm),
            Part::O(i) => (Some(i), n.o),
            Part::PostAttnNorm(i) => (Some(i), n.post_attn_norm),
            Part::FfnNorm(i) => (Some(i), n.ffn_norm),
            Part::Gate(i) => (Some(i), n.gate),
            Part::Up(i) => (Some(i), n.up),
            Part::GateUp(i) => (Some(i), n.gate_up),
            Part::Down(i) => (Some(i), n.down),
            Part::PostFfnNorm(i) => (Some(i), n.post_ffn_norm),
        };
        debug_assert!(!name.is_empty(), "{part:?}: the family has no such part");
        let prefix = self.root.prefix;
        match layer {
            Some(i) => format!("{prefix}{}.{i}.{name}.{suffix}", n.layers),
            None => format!("{prefix}{name}.{suffix}"),
        }
    }
}

/// The namers of a checkpoint of `rules`' family: its tensors' names in the
/// store and its modules' names in the Hugging Face module tree.
#[derive(Debug, Clone, Copy)]
pub(super) struct Naming {
    /// The store's names.
    pub(super) stored: Namer,
    /// The modules' names (PEFT's).
    pub(super) modules: Namer,
}

impl Naming {
    /// A Hugging Face checkpoint: the first of the family's layouts whose
    /// embedding `exists`, else the last.
    pub(super) fn hf(rules: &'static FamilyRules, exists: impl Fn(&str) -> bool) -> Naming {
        let hf = &rules.hf_tensors;
        let namer = |root| Namer {
            names: &hf.names,
            root,
        };
        let root = hf
            .roots
            .iter()
            .find(|r| exists(&namer(r.stored).name(Part::Embed, "weight")))
            .unwrap_or(&hf.roots[hf.roots.len() - 1]);
        Naming {
            stored: namer(root.stored),
            modules: namer(root.modules),
        }
    }

    /// A GGUF file; its modules are named as the default Hugging Face
    /// layout names them.
    pub(super) fn gguf(rules: &'static FamilyRules) -> Naming {
        let hf = &rules.hf_tensors;
        Naming {
            stored: Namer {
                names: &rules.gguf_tensors.names,
                root: rules.gguf_tensors.root,
            },
            modules: Namer {
                names: &hf.names,
                root: hf.roots[hf.roots.len() - 1].modules,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;

    #[test]
    fn each_format_and_layout_names_its_tensors() {
        let llama = Naming::hf(Family::Llama.rules(), |_| false);
        assert_eq!(
            llama.stored.name(Part::Q(3), "weight"),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(llama.stored.name(Part::Head, "weight"), "lm_head.weight");
        let tower = Naming::hf(Family::Gemma3.rules(), |n| {
            n == "language_model.model.embed_tokens.weight"
        });
        assert_eq!(
            tower.stored.name(Part::FfnNorm(0), "weight"),
            "language_model.model.layers.0.pre_feedforward_layernorm.weight"
        );
        assert_eq!(
            tower.stored.name(Part::Head, "weight"),
            "language_model.lm_head.weight"
        );
        assert_eq!(
            tower.modules.name(Part::Norm, "weight"),
            "model.language_model.norm.weight"
        );
        let gpt2 = Naming::hf(Family::Gpt2.rules(), |_| false);
        assert_eq!(
            gpt2.stored.name(Part::Qkv(1), "bias"),
            "h.1.attn.c_attn.bias"
        );
        assert_eq!(
            gpt2.modules.name(Part::Embed, "weight"),
            "transformer.wte.weight"
        );
        let phi3 = Naming::gguf(Family::Phi3.rules());
        assert_eq!(
            phi3.stored.name(Part::GateUp(2), "weight"),
            "blk.2.ffn_up.weight"
        );
        assert_eq!(phi3.stored.name(Part::Head, "weight"), "output.weight");
        assert_eq!(
            phi3.modules.name(Part::GateUp(2), "weight"),
            "model.layers.2.mlp.gate_up_proj.weight"
        );
    }
}
