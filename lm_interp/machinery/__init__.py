"""Interpretability machinery on TransformerBridge hook points: hook names and cached runs (`hooks`),
ablations (`ablation`), activation patching (`patching`), direct logit attribution (`dla`), metrics
(`metrics`), causal tracing (`tracing`) and linear probes on LM activations (`probing`)."""
