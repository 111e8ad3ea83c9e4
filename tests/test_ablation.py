"""The ablation's pieces: variant parsing and the bootstrap pooled over seeds (against
normal theory and the single-seed bootstrap), and `tfcr-eval --variants` end to end on tiny
synthetic data (its numbers against each trained model's own metrics.json)."""

import json
import math

import numpy as np
import pytest

from tfcr.comparison import variants
from tfcr.errors import ConfigError
from tfcr.metrics.bootstrap import Resamples, SeedPooledResamples

from tests.test_evaluate import FAST, TINY, run_eval


def test_variants_parse_reference_first_once_and_refuse_unknown_names():
  assert variants.parse_variants(["dropout", "paper", " best", "dropout"]) == [
      "paper", "dropout", "best"]
  assert variants.parse_variants(["hard_negatives"]) == ["paper", "hard_negatives"]
  with pytest.raises(ConfigError, match=r"Unknown variants drop, x; valid values: paper, "):
    variants.parse_variants(["drop", "paper", "x"])
  assert variants.settings_of("paper") == {
      "hard_negatives": 0, "condition_loss_weight": 0, "condition_dropout": 0}
  assert variants.settings_of("dropout")["condition_dropout"] > 0
  best = variants.settings_of("best")
  assert sum(best[f] > 0 for f in variants.VARIANT_FIELDS) >= 2  # a combination
  assert variants.describe("paper") == "(none)"
  assert variants.describe("dropout") == "--condition_dropout=0.5"


def test_one_seed_pooled_is_the_plain_bootstrap():
  rng = np.random.default_rng(3)
  a, b = rng.random(500), rng.random(500)
  pooled = SeedPooledResamples([500], 300, seed=11, shared=True)
  plain = Resamples(500, 300, seed=11)
  assert pooled.mean([a]) == plain.mean(a)
  assert pooled.mean_difference([a], [b]) == plain.mean_difference(a, b)
  assert pooled.quantile_ratio([a], [b], 0.5) == plain.quantile_ratio(a, b, 0.5)


def test_pooled_estimate_is_the_mean_over_seeds_hand_worked():
  pooled = SeedPooledResamples([2, 4], 50, seed=0)
  interval = pooled.mean([np.array([1.0, 0.0]), np.array([1.0, 1.0, 1.0, 0.0])])
  assert interval.value == pytest.approx((0.5 + 0.75) / 2)
  # A constant paired difference has a point interval whatever the resamples.
  diff = pooled.mean_difference([np.array([3.0, 2.0]), np.array([1.0, 1.0, 1.0, 1.0])],
                                [np.array([2.0, 1.0]), np.array([0.0, 0.0, 0.0, 0.0])])
  assert (diff.value, diff.low, diff.high) == pytest.approx((1.0, 1.0, 1.0))
  ratio = pooled.quantile_ratio([np.array([2.0, 2.0]), np.array([6.0, 6.0, 6.0, 6.0])],
                                [np.array([1.0, 1.0]), np.array([2.0, 2.0, 2.0, 2.0])], 0.5)
  assert ratio.value == pytest.approx((2 + 3) / 2)
  with pytest.raises(ValueError, match="equal sizes"):
    SeedPooledResamples([2, 4], 50, seed=0, shared=True)
  with pytest.raises(ValueError, match="2 seeds"):
    pooled.mean([np.array([1.0, 0.0])])


def test_pooled_width_follows_normal_theory_independent_and_shared():
  rng = np.random.default_rng(0)
  n = 3000
  x = (rng.random(n) < 0.3).astype(float)
  y = (rng.random(n) < 0.3).astype(float)
  se = math.sqrt(0.3 * 0.7 / n)
  # Independent queries per seed: the mean of two means has standard error se / sqrt(2).
  independent = SeedPooledResamples([n, n], 2000, seed=1).mean([x, y])
  assert abs((independent.high - independent.low) / (2 * 1.96 * se / math.sqrt(2)) - 1) < 0.1
  # Shared queries with the same per-query values in both seeds: they move together, so
  # pooling gains nothing (se, not se / sqrt(2)).
  shared = SeedPooledResamples([n, n], 2000, seed=1, shared=True).mean([x, x])
  assert abs((shared.high - shared.low) / (2 * 1.96 * se) - 1) < 0.1


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
  root = tmp_path_factory.mktemp("ablation")
  out = root / "out"
  result = run_eval(*TINY, *FAST, "--variants=dropout", "--seeds=5,6",
                    f"--output_dir={out}", f"--data_dir={root / 'data'}")
  assert "## Paired differences" in result.stdout
  return out


def test_ablation_trains_each_variant_per_seed_and_pools_their_metrics(ablation):
  results = json.loads((ablation / "ablation.json").read_text())
  assert results["seeds"] == [5, 6]
  assert list(results["variants"]) == ["paper", "dropout"]
  assert not results["shared_queries"]  # synthetic data is generated per seed
  exact = {}
  for seed in (5, 6):
    for name in ("lr", "paper", "dropout"):
      config = json.loads((ablation / f"seed{seed}" / "models" / name / "config.json")
                          .read_text())
      assert config["seed"] == seed
      assert config["model"] == ("lr" if name == "lr" else "cr")
      assert config["condition_dropout"] == (0.5 if name == "dropout" else 0.0)
      exact[seed, name] = json.loads(
          (ablation / f"seed{seed}" / "models" / name / "metrics.json").read_text())
    for name in ("paper", "dropout"):  # each variant's five-method report, as tfcr-eval's
      five = json.loads((ablation / f"seed{seed}" / name / "results.json").read_text())
      assert list(five["methods"]) == ["INDEX", "LR", "LR+filter", "CR", "CR+filter"]
      assert five["methods"]["CR"]["recall@100"]["value"] == pytest.approx(
          exact[seed, name]["recall@100"], abs=0.005)
  # The pooled numbers against tfcr-train's own exact evaluation of each model.
  def mean_exact(name, metric):
    return np.mean([exact[s, name][metric] for s in (5, 6)])
  metrics = results["metrics"]
  for name in ("paper", "dropout"):
    assert metrics[name]["recall@100"]["value"] == pytest.approx(
        mean_exact(name, "recall@100"), abs=0.005)
    assert metrics[name]["unconditional recall@100"]["value"] == pytest.approx(
        mean_exact(name, "unconditional_recall@100"), abs=0.005)
    assert metrics[name]["filtered recall@100"]["value"] == pytest.approx(
        mean_exact(name, "filtered_recall@100"), abs=0.005)
  assert metrics["LR"]["recall@100"]["value"] == pytest.approx(
      mean_exact("lr", "recall@100"), abs=0.005)
  diff = results["differences"]["dropout"]["recall@100 - paper"]
  assert diff["value"] == pytest.approx(
      mean_exact("dropout", "recall@100") - mean_exact("paper", "recall@100"), abs=0.01)
  assert diff["ci_low"] <= diff["value"] <= diff["ci_high"]
  per_seed = results["per_seed_differences"]["dropout"]["recall@100 - paper"]
  assert np.mean(per_seed) == pytest.approx(diff["value"])
  assert "recall@100 - paper" not in results["differences"]["paper"]
  markdown = (ablation / "ablation.md").read_text()
  assert "| CR dropout |" in markdown and "`--condition_dropout=0.5`" in markdown


@pytest.mark.parametrize("args,message", [
    (["--seeds=1,2"], "--seeds goes with --variants"),
    (["--variants=dropout", "--seeds=1,x"], "--seeds must be comma-separated integers"),
])
def test_bad_ablation_flags_are_one_line_with_exit_code_2(args, message, tmp_path):
  result = run_eval(*args, f"--output_dir={tmp_path / 'out'}", check=False)
  assert result.returncode == 2, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("tfcr-eval: error:") and message in last, last
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("names,changes,message", [
    (["paper", "drop"], {}, "Unknown variants drop; valid values: paper,"),
    (["dropout"], {"condition_dropout": 0.3}, "condition_dropout are set by each variant"),
    (["dropout"], {"cr_model_dir": "/tmp"}, "train their own models"),
    (["dropout"], {"sources": {}}, "give at least one seed"),
])
def test_bad_ablation_options_raise_before_writing_anything(names, changes, message,
                                                             tmp_path):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfcr.comparison.ablation import AblationOptions, run_ablation  # pylint: disable=g-import-not-at-top
  from tfcr.comparison.pipeline import ComparisonOptions  # pylint: disable=g-import-not-at-top
  from tfcr.data.sources import DataSource  # pylint: disable=g-import-not-at-top
  from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  train = dataclasses.replace(TrainConfig(), **{k: v for k, v in changes.items()
                                                if k == "condition_dropout"})
  comparison = ComparisonOptions(train=train, output_dir=str(tmp_path / "out"),
                                 cr_model_dir=changes.get("cr_model_dir", ""))
  options = AblationOptions(comparison=comparison, variants=names,
                            sources=changes.get("sources", {1: DataSource()}))
  with pytest.raises(ConfigError, match=message):
    run_ablation(options)
  assert not (tmp_path / "out").exists()
