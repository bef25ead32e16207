"""The recipe variants the cross-validated ablation compares, and the order they run in.

Each variant changes one thing against recipe v2 (`TrainConfig()`), except `legacy` (the recipe v2
replaced) and `plain_*` (the textbook transformers loop of bench/train_throughput.py at one rate).
Plans list (label set, variants, folds) in priority order; bench/cv_select.py runs what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    note: str
    overrides: dict = field(default_factory=dict)
    kind: str = "v2"
    """v2 (TrainConfig() + overrides), legacy (LEGACY_RECIPE + overrides) or plain (plain_hf_loop)."""
    extra_train: str | tuple[str, ...] = ""
    """JSONL file(s) of extra rows (repository-relative) added to every fold's training part only: held-out
    folds stay the pool's own rows, so the variant is scored on exactly the same messages."""


#: Recipe v2 as shipped since the JA-EN glossary (32 attacked rows, cheaper dropout masks, the glossary), and the
#: rows the asset graph adds to training: the base of the variants measured on the champion's recipe.
_GLOSSARY_RECIPE = {"adversarial_batch_size": 32, "fast_dropout": True, "ja_en_glossary": "on"}
_TARGETED_ROWS = "data/targeted/targeted.jsonl"

VARIANTS: dict[str, Variant] = {
    "v2": Variant("recipe v2 as shipped before this sweep (plain CE, 250 steps, head x10)"),
    "class_weights": Variant("inverse-frequency class weights (mean 1)", {"class_weighting": True}),
    "escalation_rows": Variant(
        "+65 hand-written escalation rows in training (data/targeted/targeted.jsonl)",
        extra_train="data/targeted/targeted.jsonl",
    ),
    "escalation_rows_cw": Variant(
        "+65 hand-written escalation rows and class weights",
        {"class_weighting": True},
        extra_train="data/targeted/targeted.jsonl",
    ),
    "oversample": Variant("minority rows replicated to the largest class", {"oversample": True}),
    "focal_cw": Variant("focal loss gamma 2 + class weights", {"loss": "focal", "class_weighting": True}),
    "label_smoothing": Variant("label smoothing 0.1", {"label_smoothing": 0.1}),
    "legacy": Variant("legacy recipe (focal + seed weights, [CLS] via pooler, 5 epochs)", kind="legacy"),
    "steps150": Variant("150-step budget", {"max_steps": 150}),
    "steps400": Variant("400-step budget", {"max_steps": 400}),
    "head1": Variant("head learning-rate multiplier 1 (instead of 10)", {"head_lr_multiplier": 1.0}),
    "ema": Variant("EMA of the weights (decay 0.98)", {"ema_decay": 0.98}),
    "rdrop": Variant("R-Drop (alpha 1)", {"rdrop_alpha": 1.0}),
    "frozen3": Variant("embeddings + bottom 3 of 6 blocks frozen and cached", {"frozen_layers": 3}),
    "frozen4": Variant("embeddings + bottom 4 of 6 blocks frozen and cached", {"frozen_layers": 4}),
    "adversarial": Variant(
        "adversarial training, auxiliary batch of 16 attacked rows, weight 1", {"adversarial_weight": 1.0}
    ),
    "adversarial_v2": Variant(
        "adversarial training, weight 1, with lone escalation demands labelled escalation (3% of the "
        "attacked rows; the `adversarial` rows were recorded before they existed)",
        {"adversarial_weight": 1.0},
    ),
    "adversarial2": Variant("adversarial training, weight 2", {"adversarial_weight": 2.0}),
    "adversarial_trades": Variant(
        "adversarial training, weight 1 + consistency KL(clean ‖ attacked) 1",
        {"adversarial_weight": 1.0, "adversarial_consistency": 1.0},
    ),
    "v2_adversarial": Variant(
        "recipe v2 as shipped until 2026-12-06 (outlier exposure + adversarial training weight 1, 16 attacked "
        "rows a step)",
        {"adversarial_batch_size": 16},
    ),
    "adv_batch32": Variant(
        "adversarial training with 32 attacked rows a step (weight 1: the same pull, twice the phrasings)",
        {"adversarial_batch_size": 32},
    ),
    "adv_steps400": Variant(
        "recipe v2 (16 attacked rows a step) with a 400-step budget",
        {"max_steps": 400, "adversarial_batch_size": 16},
    ),
    "v2_grouped_aux": Variant(
        "recipe v2 as shipped, the defences' rows sorted together by length and dealt into one forward "
        "pass per step, so a step's mix of out-of-scope and attacked rows varied (not kept)",
        {"adversarial_batch_size": 16},
    ),
    "v2_paired_aux": Variant(
        "recipe v2 as shipped, each step's 16 out-of-scope + 16 attacked rows in one forward pass, each kind "
        "dealt by length (manga_intent/auxiliary.py; `v2_adversarial` ran two passes of random rows)",
        {"adversarial_batch_size": 16},
    ),
    "v2_frozen2": Variant(
        "recipe v2 as shipped with the embeddings + bottom 2 of 6 blocks frozen; every row, the defences' "
        "included, starts from their cached outputs",
        {"frozen_layers": 2, "adversarial_batch_size": 16},
    ),
    "v2_frozen3": Variant(
        "recipe v2 as shipped with the embeddings + bottom 3 of 6 blocks frozen and cached (all rows)",
        {"frozen_layers": 3, "adversarial_batch_size": 16},
    ),
    "v2_frozen2_adv32": Variant(
        "bottom 2 blocks frozen and cached, with 32 attacked rows a step (what the cache saves, spent on "
        "more attacked rows)",
        {"frozen_layers": 2, "adversarial_batch_size": 32},
    ),
    "v2_fast_dropout": Variant(
        "recipe v2 as shipped on 2026-12-06 (32 attacked rows a step) with the cheaper dropout masks "
        "(manga_intent/fast_dropout.py)",
        {"adversarial_batch_size": 32, "fast_dropout": True},
    ),
    "v2_torch_dropout": Variant(
        "recipe v2 as shipped on 2026-12-05 (32 attacked rows a step, torch's dropout)",
        {"adversarial_batch_size": 32, "fast_dropout": False},
    ),
    "adv_batch48": Variant(
        "48 attacked rows a step, with the cheaper dropout masks",
        {"adversarial_batch_size": 48, "fast_dropout": True},
    ),
    "attention_pool": Variant(
        "attention pooling (learned token weights, starting as the mean) instead of mean pooling; can the model "
        "learn to give an injected instruction's tokens little weight?",
        {"pooling": "attention", "adversarial_batch_size": 32, "fast_dropout": True},
    ),
    "adv16_oe8": Variant(
        "16 attacked + 8 out-of-scope rows a step (instead of 32 + 16), with the cheaper dropout masks: the "
        "defences' rows are two thirds of a step's tokens, so halving them buys training speed",
        {"adversarial_batch_size": 16, "outlier_batch_size": 8, "fast_dropout": True},
    ),
    "ja_en_glossary": Variant(
        "recipe v2 as shipped on 2026-12-06 (v2_fast_dropout) with the JA-EN glossary in the tokenizer "
        "(manga_intent/glossary.py): English glosses after Japanese shop terms",
        {**_GLOSSARY_RECIPE},
    ),
    "glossary_targeted": Variant(
        "recipe v2 as shipped (ja_en_glossary) with the 65 targeted escalation rows in training, as the asset "
        "graph's seed_corpus adds them (data/targeted/targeted.jsonl)",
        {**_GLOSSARY_RECIPE},
        extra_train=_TARGETED_ROWS,
    ),
    "glossary_targeted_cw": Variant(
        "glossary_targeted with inverse-frequency class weights (mean 1)",
        {**_GLOSSARY_RECIPE, "class_weighting": True},
        extra_train=_TARGETED_ROWS,
    ),
    "targeted_no_lone_demands": Variant(
        "glossary_targeted without the lone escalation demands among the attacked rows (they were added "
        "for escalation before the targeted rows existed; with them, injections flip towards escalation)",
        {**_GLOSSARY_RECIPE, "adversarial_self_routing_share": 0.0},
        extra_train=_TARGETED_ROWS,
    ),
    "targeted_ema": Variant(
        "glossary_targeted with an EMA of the weights (decay 0.98), evaluated and saved as the average (recorded "
        "before the average was bias-corrected: it started from the initial weights)",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.98},
        extra_train=_TARGETED_ROWS,
    ),
    "targeted_label_smoothing": Variant(
        "glossary_targeted with label smoothing 0.1",
        {**_GLOSSARY_RECIPE, "label_smoothing": 0.1},
        extra_train=_TARGETED_ROWS,
    ),
    "targeted_rdrop": Variant(
        "glossary_targeted with R-Drop (alpha 1: a second forward pass of the clean batch, symmetric KL)",
        {**_GLOSSARY_RECIPE, "rdrop_alpha": 1.0},
        extra_train=_TARGETED_ROWS,
    ),
    "shipped": Variant(
        "the recipe as shipped for a day (glossary_targeted + the bias-corrected EMA, decay 0.98), recorded "
        "with its inner validation logits so the calibrators can be compared out of fold",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.98},
        extra_train=_TARGETED_ROWS,
    ),
    "shipped_rdrop": Variant(
        "shipped + R-Drop (alpha 1): R-Drop had the lowest injection flip rate out of fold, never measured "
        "together with EMA",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.98, "rdrop_alpha": 1.0},
        extra_train=_TARGETED_ROWS,
    ),
    "shipped_no_ema": Variant(
        "shipped without the EMA, the recipe as shipped again (glossary_targeted rerun with today's code: "
        "clean_text's lookalike fix and the self-routing share setting came after it was recorded)",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.0},
        extra_train=_TARGETED_ROWS,
    ),
    "shipped_synthetic": Variant(
        "shipped_no_ema + the consensus-kept synthetic rows, as the asset graph trains its champion "
        "(every kept row: `trained_model.synthetic_share` 1, the default until 2026-12-07): the kept set "
        "of `make demo`'s synthetic_set (n 1500, k 5, fold_epochs 2; 1,158 rows) copied to "
        "bench/results/synthetic/kept_demo.jsonl. Its "
        "consensus folds trained on the seed corpus's training split, which overlaps the held-out folds: "
        "a mild leak through which generated rows were kept, none through their text",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.0},
        extra_train=(_TARGETED_ROWS, "bench/results/synthetic/kept_demo.jsonl"),
    ),
    "shipped_sb25": Variant(
        "shipped with selective backprop of the defences' rows: each step scores its 16 out-of-scope and 32 "
        "attacked rows without gradients and trains the hardest quarter of each (4 + 8)",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.98, "auxiliary_backprop_share": 0.25},
        extra_train=_TARGETED_ROWS,
    ),
    "shipped_sb125": Variant(
        "shipped with selective backprop of the defences' rows, the hardest eighth (2 + 4)",
        {**_GLOSSARY_RECIPE, "ema_decay": 0.98, "auxiliary_backprop_share": 0.125},
        extra_train=_TARGETED_ROWS,
    ),
    "plain_1e-4": Variant("plain transformers loop, lr 1e-4, 5 epochs", {"lr": 1e-4}, kind="plain"),
    "plain_3e-4": Variant("plain transformers loop, lr 3e-4, 5 epochs", {"lr": 3e-4}, kind="plain"),
    "plain_5e-5": Variant("plain transformers loop, lr 5e-5, 5 epochs", {"lr": 5e-5}, kind="plain"),
}

#: Variants recorded before `TrainConfig.fast_dropout` existed ran torch's dropout, before
#: `TrainConfig.ja_en_glossary` existed read the base tokenizer, before EMA became the default (2026-12-06)
#: kept the raw weights, and before selective backprop trained every defence row: pinned, so rerunning one
#: reproduces its record (a variant that sets one of them itself keeps its own value).
for _variant in VARIANTS.values():
    if _variant.kind == "v2":
        _variant.overrides.setdefault("fast_dropout", False)
        _variant.overrides.setdefault("ja_en_glossary", "off")
        _variant.overrides.setdefault("ema_decay", 0.0)
        _variant.overrides.setdefault("auxiliary_backprop_share", 1.0)


PLANS: dict[str, list[tuple[str, list[str], int]]] = {
    # the gate judges each rare intent on its own (>= 85%): do the rare-class remedies lift the weakest one?
    # the injection defence: does adversarial training cost clean accuracy out of fold, what does it buy?
    "robust": [
        ("seed", ["v2", "adversarial"], 5),
        ("seed", ["adversarial2", "adversarial_trades"], 5),
        ("seed", ["adversarial_v2"], 5),
    ],
    # can more attacked rows (per step, or more steps) push the injection flip rate under the seed's 5%?
    "robust_more": [("seed", ["v2_adversarial", "adv_batch32", "adv_steps400"], 5)],
    # the same recipe with its auxiliary rows batched for speed: is anything lost out of fold?
    "grouped_aux": [("seed", ["v2_grouped_aux", "v2_paired_aux"], 5)],
    # the defences' rows cost more than the clean batch: do frozen, cached bottom blocks keep what they buy?
    "frozen_defended": [("seed", ["v2_frozen2", "v2_frozen3", "v2_frozen2_adv32"], 5)],
    # the cheaper dropout masks must cost nothing out of fold; can 48 attacked rows reach a 5% flip rate?
    "fast_dropout": [("seed", ["v2_fast_dropout", "v2_torch_dropout", "adv_batch48"], 5)],
    # mean pooling makes every injected token a share of the sentence vector: does learned pooling help?
    "attention_pool": [("seed", ["attention_pool"], 5)],
    # the defences' rows cost two thirds of a step: do half as many keep what they buy out of fold?
    "cheaper_defences": [("seed", ["adv16_oe8"], 5)],
    # JP-EN is the weakest segment (0.69 out of fold): do English glosses of Japanese shop terms help?
    "glossary": [("seed", ["ja_en_glossary"], 5)],
    # escalation is the rare intent under target: what do the asset graph's targeted rows (and weights) do?
    "escalation_now": [("seed", ["glossary_targeted", "glossary_targeted_cw"], 5)],
    # with the targeted rows, injections flip towards escalation: are the lone demands still needed?
    "lone_demands": [("seed", ["targeted_no_lone_demands"], 5)],
    # the regularisers of issue 9, measured on the champion's recipe as it now trains (defences, glossary,
    # targeted rows); each is kept only if it wins out of fold
    "regularisers_now": [("seed", ["targeted_ema", "targeted_label_smoothing", "targeted_rdrop"], 5)],
    # the 160-row validation split fits the temperature: would out-of-fold logits calibrate better, and
    # does R-Drop on top of EMA lower the injection flip rate?
    "calibration_now": [("seed", ["shipped", "shipped_rdrop"], 5)],
    # the asset graph trained on the synthetic set's kept rows (opt-in since 2026-12-07): never measured before
    "synthetic": [("seed", ["shipped_synthetic", "shipped_no_ema"], 5)],
    # the defences' rows cost most of a step: does training only the hardest of them keep what they buy?
    # (and EMA against none, both with today's code)
    "selective_backprop": [("seed", ["shipped_sb25", "shipped_no_ema", "shipped_sb125"], 5)],
    "rare": [("seed", ["v2", "class_weights", "escalation_rows", "escalation_rows_cw"], 5)],
    "main": [
        ("seed", ["v2", "frozen4", "frozen3"], 5),
        ("seed", ["class_weights", "oversample", "focal_cw", "label_smoothing"], 5),
        ("seed", ["legacy", "steps150", "head1", "ema"], 5),
        ("seed", ["rdrop", "steps400"], 5),
    ],
}
