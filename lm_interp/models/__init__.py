"""Language models and what they read: loading (`loading`), tokenizers (`tokenizer`), token positions, raw
forward passes and sampling (`tokens`), the synthetic world and generated corpus (`world`, `corpus`,
`real_facts`). Training the tiny model sits above the machinery (`lm_interp.train`: it evaluates with
`lm_interp.machinery.metrics`)."""
