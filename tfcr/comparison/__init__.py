"""The paper's five-way comparison: INDEX, LR, LR + filter, CR, CR + filter.

`tfcr.comparison.pipeline.run_comparison` trains (or loads) an LR and a CR model with the
same data, split, sizes and seed, exports both as servables, runs the same test queries
through them and through the INDEX baseline, and writes a report with bootstrap confidence
intervals (`trainer/evaluate.py`, `tfcr-eval`, is its command line). One concept per module:

* `queries`: the test queries (held-out pair + a condition of the held-out item);
* `baselines`: INDEX, condition -> the condition's items by training popularity;
* `servable_runner`: batched and single-row calls to an exported servable;
* `metrics`: per-query metrics (recall, NDCG, topic match) and catalog coverage;
* `bootstrap`: percentile bootstrap confidence intervals over test queries;
* `report`: the markdown, CSV and JSON outputs;
* `plots`: the PNG figures.
"""
