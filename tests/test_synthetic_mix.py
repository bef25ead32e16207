"""The cap on synthetic training rows: never above the share, deterministic, and balanced when asked."""

from collections import Counter

import pytest

from manga_intent.data import Example
from manga_intent.synthetic.mix import cap_synthetic_rows, synthetic_budget


def _kept() -> list[Example]:
    counts = {"recommendation": 200, "faq": 60, "escalation": 6, "checkout_help": 3}
    return [Example(f"{label} {i}", label, "train") for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize("n_real, share", [(1345, 0.1), (100, 0.5), (7, 0.3), (0, 0.2), (1000, 0.0)])
def test_budget_is_the_largest_count_within_the_share(n_real, share):
    budget = synthetic_budget(n_real, share)
    assert budget == 0 or budget / (n_real + budget) <= share + 1e-12
    assert (budget + 1) / (n_real + budget + 1) > share


def test_seed_recipe_share_of_the_champion_data():
    assert synthetic_budget(1345, 0.1) == 149  # 1,280 training rows + 65 targeted rows


@pytest.mark.parametrize("balance", ["proportional", "per_intent"])
def test_capped_rows_are_a_deterministic_subset_in_kept_order(balance):
    kept = _kept()
    a = cap_synthetic_rows(kept, n_real=400, max_share=0.1, seed=7, balance=balance)
    assert len(a) == synthetic_budget(400, 0.1) == 44
    assert a == cap_synthetic_rows(kept, n_real=400, max_share=0.1, seed=7, balance=balance)
    assert a != cap_synthetic_rows(kept, n_real=400, max_share=0.1, seed=8, balance=balance)
    positions = [kept.index(row) for row in a]
    assert positions == sorted(positions) and len(set(positions)) == len(a)


def test_per_intent_gives_rare_intents_all_they_have_up_to_an_equal_share():
    counts = Counter(
        r.label for r in cap_synthetic_rows(_kept(), n_real=400, max_share=0.1, seed=1, balance="per_intent")
    )
    # 44 rows over 4 intents: the two rare ones give all they have (6 and 3), the rest is split evenly
    assert counts["escalation"] == 6 and counts["checkout_help"] == 3
    assert sorted([counts["recommendation"], counts["faq"]]) == [17, 18]


def test_proportional_keeps_the_kept_mix():
    counts = Counter(
        r.label
        for r in cap_synthetic_rows(_kept(), n_real=2000, max_share=0.1, seed=3, balance="proportional")
    )
    assert counts["recommendation"] > counts["faq"] > counts["checkout_help"]


def test_a_budget_above_the_kept_set_takes_every_row():
    kept = _kept()
    assert cap_synthetic_rows(kept, n_real=100_000, max_share=0.1, seed=0) == kept
    assert cap_synthetic_rows(kept, n_real=10, max_share=1.0, seed=0) == kept  # 1 = no cap
    assert cap_synthetic_rows(kept, n_real=10, max_share=0.0, seed=0) == []


@pytest.mark.parametrize("share", [-0.1, 1.01, 1.5])
def test_share_outside_zero_one_is_refused(share):
    with pytest.raises(ValueError, match="max_share must be in"):
        cap_synthetic_rows(_kept(), n_real=10, max_share=share, seed=0)


def test_unknown_balance_is_refused():
    with pytest.raises(ValueError, match="balance must be one of"):
        cap_synthetic_rows(_kept(), n_real=10, max_share=0.1, seed=0, balance="rare_first")


def test_training_rows_from_the_asset_store(tmp_path):
    """What `trained_model` and `hpo_study` add: nothing read at share 0, a capped sample otherwise."""
    from manga_assets.manifests import SyntheticSet
    from manga_assets.snapshots import synthetic_training_rows, write_snapshot
    from resources.storage import LocalArtifactStore

    store = LocalArtifactStore(root=str(tmp_path / "artifacts"))
    kept_uri = write_snapshot(store, _kept(), "synthetic/kept.jsonl")
    kept = SyntheticSet(uri="", kept_uri=kept_uri, review_uri="", kept=len(_kept()), flagged=0)
    gone = SyntheticSet(uri="", kept_uri=str(tmp_path / "missing.jsonl"), review_uri="", kept=0, flagged=0)

    assert synthetic_training_rows(store, gone, n_real=400, max_share=0.0, balance="per_intent", seed=1) == []
    rows = synthetic_training_rows(store, kept, n_real=400, max_share=0.1, balance="per_intent", seed=1)
    assert len(rows) == 44 and Counter(r.label for r in rows)["checkout_help"] == 3
    assert (
        len(synthetic_training_rows(store, kept, n_real=400, max_share=1.0, balance="per_intent", seed=1))
        == 269
    )
    with pytest.raises(ValueError, match="balance must be one of"):
        synthetic_training_rows(store, gone, n_real=400, max_share=0.0, balance="even", seed=1)
    with pytest.raises(ValueError, match="max_share must be in"):
        synthetic_training_rows(store, gone, n_real=400, max_share=2.0, balance="per_intent", seed=1)
