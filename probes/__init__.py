"""Probes: do a network's activations encode a concept, and does its output use it?

Model- and game-agnostic: everything works on activation arrays, concept labels and group
ids (game ids), so the same code serves the Connect Four agent and transformer LMs.

* `probes.activations`: named activations from forward hooks, on-disk cache, flat and
  per-square views of conv maps;
* `probes.linear`: logistic / L1 / ridge / MLP probes with grouped splits, inner CV and
  bootstrap intervals over games (`fit_probes`: many targets on one feature matrix);
* `probes.batched`: the batched solvers behind it (whitened principal coordinates,
  L-BFGS logistic regression, closed-form ridge);
* `probes.controls`: majority baseline, Hewitt-Liang control tasks (selectivity), shuffled labels;
* `probes.tcav`: CAVs, TCAV scores with random-CAV significance tests, Benjamini-Hochberg,
  gradients of a target with respect to a layer;
* `probes.sweep`: checkpoints x layers x concepts x probes x controls, plus TCAV, as long-form results;
* `probes.study` / `probes.study_report`: deltas against the strongest control across seeds;
* `probes.causal`: concept erasers (LEACE, INLP, random) and output-editing hooks;
* `probes.interventions` / `probes.usage_report`: per-square and whole-board interventions and
  activation patching judged on oracle-labelled positions; represented vs used;
* `probes.report`: the Markdown/PNG report of a sweep.
"""
