"""The paper's five-way comparison: INDEX, LR, LR + filter, CR, CR + filter.

`tfcr.comparison.pipeline.run_comparison` trains (or loads) an LR and a CR model with the
same data, split, sizes and seed, exports both as servables, runs the same test queries
through them and through the INDEX baseline, and writes a report with bootstrap confidence
intervals (`trainer/evaluate.py`, `tfcr-eval`, is its command line). One concept per module:

* `pipeline`: the whole run;
* `baselines`: INDEX, condition -> the condition's items by training popularity;
* `servable_runner`: batched and single-row calls to an exported servable;
* `report`: the markdown, CSV and JSON outputs;
* `plots`: the PNG figures;
* `variants`: the condition-aware CR variants (`tfcr-eval --variants`);
* `ablation`: those variants and LR trained per seed, each with its five-method report,
  and their paired differences pooled over the seeds;
* `ablation_report`: ablation.md and ablation.json.

The test queries, the per-query metrics and the bootstrap are `tfcr.metrics`' (the same
as metrics.json's).
"""
