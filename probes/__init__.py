"""Linear probes, TCAV and causal tests on named activations; game- and model-agnostic."""
