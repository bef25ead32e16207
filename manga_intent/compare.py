"""Comparative methods at a glance (the seed's table and its open problem 1), with enough seeds to mean it.

Every method trains on the same split with the same optimiser-step budget and backbone (recipe v2's
pooled encoder and learning rates); only the way it handles imbalance / calibration differs:

| method | what changes |
|---|---|
| plain_ce | cross-entropy, nothing else (no outlier exposure, no adversarial training) |
| class_weighted_ce | inverse-frequency class weights (He & Garcia 2009) |
| oversampling | minority rows replicated to the majority size (Chawla 2002) |
| label_smoothing | epsilon 0.1 (Szegedy 2016) |
| focal_class_weights | focal loss gamma 2 + class weights (Lin 2017): the seed's choice |
| threshold_moving | plain_ce + per-class logit offsets fitted on validation for macro-F1 (Provost 2000) |
| two_stage | plain_ce + a rare-intent head on its pooled features: P(rare_k) from the head, the rest by stage 1 |
| recipe_v2 | the shipped defaults (`TrainConfig()`): plain CE + outlier exposure on `outlier_texts` + adversarial training |

Each (method, seed) run is scored on the TEST split (never the golden set) with its temperature
fitted on validation. `summarize` gives mean and 95% t-interval across seeds and, against recipe v2,
a paired bootstrap over test examples (all seeds kept together per example) and an exact McNemar
test on the discordant pairs pooled over seeds, both Holm-adjusted across methods.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from scipy import stats

from manga_intent.calibration import fit_temperature
from manga_intent.data import DataSplits, label_shares
from manga_intent.inference import softmax
from manga_intent.metrics import expected_calibration_error, macro_f1, rare_labels_from_shares
from manga_intent.model_io import PACKAGED_ALIASES, PACKAGED_MINILM
from manga_intent.taxonomy import RARE_SHARE_THRESHOLD
from manga_intent.training import TrainConfig, default_lr_table, train_classifier

REFERENCE = "recipe_v2"
TRAINED_METHODS = {
    "plain_ce": {"loss": "ce"},
    "class_weighted_ce": {"loss": "ce", "class_weighting": True},
    "oversampling": {"loss": "ce", "oversample": True},
    "label_smoothing": {"loss": "ce", "label_smoothing": 0.1},
    "focal_class_weights": {"loss": "focal", "gamma": 2.0, "class_weighting": True},
}
POST_HOC_METHODS = {"threshold_moving": "plain_ce", "two_stage": "plain_ce"}
METHODS = (*TRAINED_METHODS, *POST_HOC_METHODS, REFERENCE)
METHOD_NOTES = {
    "plain_ce": "argmax softmax + CE",
    "class_weighted_ce": "inverse-frequency weights",
    "oversampling": "replicate minority rows",
    "label_smoothing": "softer targets (eps 0.1)",
    "focal_class_weights": "focal gamma 2 + class weights",
    "threshold_moving": "per-class offsets fitted on val",
    "two_stage": "rare-intent head on pooled features",
    "recipe_v2": "the shipped defaults",
}
LATENCY_MESSAGES = 100


def method_config(method: str, seed: int, base: TrainConfig | None = None) -> TrainConfig:
    """Recipe v2's backbone and budget with only the method's imbalance/calibration handling changed.

    The other methods are plain fine-tunes on that backbone: recipe v2's outlier exposure and adversarial
    training are off for them, so the table also shows what those two cost or buy in-scope."""
    base = base or TrainConfig()
    seeded = replace(base, init_seed=seed, sampler_seed=seed)
    if method == REFERENCE:
        return seeded
    if method not in TRAINED_METHODS:
        raise ValueError(f"{method!r} is not a trained method; methods: {list(METHODS)}")
    neutral = replace(
        seeded,
        loss="ce",
        class_weighting=False,
        oversample=False,
        label_smoothing=0.0,
        rdrop_alpha=0.0,
        ema_decay=0.0,
        outlier_exposure_weight=0.0,
        adversarial_weight=0.0,
        adversarial_consistency=0.0,
        adversarial_augmentation=0.0,
    )
    return replace(neutral, **TRAINED_METHODS[method])


# --- one run -------------------------------------------------------------------------------------


def _outputs(model, tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled features) of the eager model, in input order."""
    import torch

    from manga_intent.batching import encode_texts, iter_eval_batches
    from manga_intent.data import clean_text

    encoded = encode_texts(tokenizer, [clean_text(t) for t in texts], max_length)
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    features = None
    with torch.inference_mode():
        for indices, batch in iter_eval_batches(encoded, 64, tokenizer.pad_token_id):
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits[indices] = out.logits.float().numpy()
            feats = getattr(out, "features", None)
            if feats is not None:
                if features is None:
                    features = np.zeros((len(texts), feats.shape[1]), dtype=np.float32)
                features[indices] = feats.float().numpy()
    return logits, features


def single_message_latency_ms(model, tokenizer, texts: Sequence[str], max_length: int) -> list[float]:
    """Eager tokenize → logits latency, one message at a time (the serving shape)."""
    import torch

    from manga_intent.data import clean_text

    samples = []
    with torch.inference_mode():
        for text in list(texts)[:10]:  # warm-up
            batch = tokenizer([clean_text(text)], truncation=True, max_length=max_length, return_tensors="pt")
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        for text in texts:
            start = time.perf_counter()
            batch = tokenizer([clean_text(text)], truncation=True, max_length=max_length, return_tensors="pt")
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def train_outputs(
    splits: DataSplits,
    label_list: Sequence[str],
    config: TrainConfig,
    *,
    base_model: str | None,
    model_and_tokenizer_factory=None,
    latency_messages: int = LATENCY_MESSAGES,
    with_train_outputs: bool = True,
    outlier_texts: Sequence[str] = (),
) -> dict:
    """Train once and keep what every scoring of the run needs: logits/features per split, latency.

    Training-split outputs (what the two-stage head is fitted on) only when `with_train_outputs`.
    """
    mt = model_and_tokenizer_factory() if model_and_tokenizer_factory else None
    result = train_classifier(
        splits.train,
        splits.val,
        label_list,
        config,
        base_model=base_model,
        model_and_tokenizer=mt,
        progress=False,
        outlier_texts=outlier_texts,
    )
    out = {
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "best_step": result.best.step,
        "steps": result.steps,
    }
    for name in ("train", "val", "test") if with_train_outputs else ("val", "test"):
        logits, features = _outputs(
            result.model, result.tokenizer, [e.text for e in getattr(splits, name)], config.max_length
        )
        out[f"{name}_logits"] = logits
        if features is not None:
            out[f"{name}_features"] = features
    out["latency_ms"] = np.array(
        single_message_latency_ms(
            result.model,
            result.tokenizer,
            [e.text for e in splits.test[:latency_messages]],
            config.max_length,
        )
    )
    return out


def fit_logit_offsets(
    logits: np.ndarray, labels: np.ndarray, num_classes: int, rounds: int = 3, grid: np.ndarray | None = None
) -> np.ndarray:
    """Per-class additive offsets on log-probabilities maximising macro-F1 (coordinate ascent on val)."""
    grid = np.linspace(-3, 3, 25) if grid is None else grid
    log_probs = np.log(softmax(logits) + 1e-12)
    offsets = np.zeros(num_classes)
    best = macro_f1(labels, (log_probs + offsets).argmax(1), num_classes)
    for _ in range(rounds):
        for c in range(num_classes):
            for value in grid:
                trial = offsets.copy()
                trial[c] = value
                score = macro_f1(labels, (log_probs + trial).argmax(1), num_classes)
                if score > best + 1e-12:
                    best, offsets = score, trial
    return offsets


def two_stage_log_probs(
    stage1_logits: np.ndarray, head, features: np.ndarray, rare_ids: Sequence[int]
) -> np.ndarray:
    """log P: rare intent k from the rare head; every other intent = P(other) x stage-1 share among the rest."""
    q = head.predict_proba(features)  # columns: rare ids in order, then "other"
    p1 = softmax(stage1_logits)
    common = np.ones(p1.shape[1], dtype=bool)
    common[list(rare_ids)] = False
    rest = p1[:, common] / p1[:, common].sum(axis=1, keepdims=True)
    combined = np.zeros_like(p1)
    combined[:, common] = q[:, -1:] * rest
    for column, rare in enumerate(rare_ids):
        combined[:, rare] = q[:, column]
    return np.log(np.clip(combined, 1e-12, 1.0))


def fit_rare_head(features: np.ndarray, labels: np.ndarray, rare_ids: Sequence[int], seed: int):
    """Stage 2: class-balanced logistic regression on {each rare intent, other}."""
    from sklearn.linear_model import LogisticRegression

    mapping = {r: i for i, r in enumerate(rare_ids)}
    target = np.array([mapping.get(int(y), len(rare_ids)) for y in labels])
    head = LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0, random_state=seed)
    head.fit(features, target)
    return head


def score_run(
    method: str, outputs: dict, splits: DataSplits, label_list: Sequence[str], rare: Sequence[str], seed: int
) -> dict:
    """Test-split metrics of one method from its (or its stage-1's) outputs; calibration fitted on val."""
    index = {label: i for i, label in enumerate(label_list)}
    y_val = np.array([index[e.label] for e in splits.val])
    y_test = np.array([index[e.label] for e in splits.test])
    k = len(label_list)
    val_logits, test_logits = outputs["val_logits"], outputs["test_logits"]
    latency = np.asarray(outputs["latency_ms"], dtype=float)
    rare_ids = [index[r] for r in rare]
    if method == "threshold_moving":
        offsets = fit_logit_offsets(val_logits, y_val, k)
        val_logits = np.log(softmax(val_logits) + 1e-12) + offsets
        test_logits = np.log(softmax(test_logits) + 1e-12) + offsets
    elif method == "two_stage":
        if "train_features" not in outputs:
            raise ValueError("two_stage needs pooled features (a PooledEncoderForSequenceClassification)")
        if not rare_ids:
            raise ValueError("two_stage needs at least one rare intent")
        y_train = np.array([index[e.label] for e in splits.train])
        head = fit_rare_head(outputs["train_features"], y_train, rare_ids, seed)
        val_logits = two_stage_log_probs(val_logits, head, outputs["val_features"], rare_ids)
        test_logits = two_stage_log_probs(test_logits, head, outputs["test_features"], rare_ids)
        one = outputs["test_features"][:1]
        started = time.perf_counter()
        for _ in range(50):
            two_stage_log_probs(outputs["test_logits"][:1], head, one, rare_ids)
        latency = latency + (time.perf_counter() - started) / 50 * 1000
    temperature = fit_temperature(val_logits, y_val).temperature
    probs = softmax(test_logits, temperature)
    predicted = probs.argmax(axis=1)
    correct = (predicted == y_test).astype(int)
    per_rare = {}
    for r in rare:
        mask = y_test == index[r]
        if mask.any():
            per_rare[r] = float(correct[mask].mean())
    rare_mask = np.isin(y_test, rare_ids)
    return {
        "method": method,
        "seed": seed,
        "accuracy": float(correct.mean()),
        "macro_f1": macro_f1(y_test, predicted, k),
        "rare_class_accuracy": float(correct[rare_mask].mean()) if rare_mask.any() else None,
        "per_rare_intent_accuracy": per_rare,
        "ece_calibrated": expected_calibration_error(probs, y_test),
        "temperature": float(temperature),
        "p95_latency_ms": float(np.percentile(latency, 95)),
        "train_seconds": outputs.get("train_seconds"),
        "best_step": outputs.get("best_step"),
        "predictions": predicted.tolist(),
        "n_test": int(len(y_test)),
    }


class OutputCache:
    """Trained-run outputs on disk (npz), so post-hoc methods reuse the plain-CE model of the same seed."""

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) if directory else None
        self._memory: dict[str, dict] = {}

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.npz" if self.directory else None

    def get(self, key: str) -> dict | None:
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                loaded = {name: data[name] for name in data.files}
            for scalar in ("train_seconds", "examples_per_second", "best_step", "steps"):
                if scalar in loaded:
                    loaded[scalar] = loaded[scalar].item()
            self._memory[key] = loaded
            return loaded
        return None

    def put(self, key: str, outputs: dict) -> None:
        self._memory[key] = outputs
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in outputs.items()})
            tmp.replace(path)


def setup_key(
    base_config: TrainConfig | None = None, base_model: str | None = None, outlier_texts: Sequence[str] = ()
) -> str:
    """What every run of one comparison grid shares: base model, recipe settings (seeds aside) and, when the
    rate is left to the per-hidden-size default, that table; and the out-of-scope texts recipe v2's outlier
    exposure trains on. Runs of another setup are never reused or tabled.

    Without it, a grid resumed after the default learning rate changed (or on another base model) would mix
    runs of two recipes in one table under the same cache files.
    """
    config = asdict(base_config or TrainConfig())
    config.pop("init_seed", None)
    config.pop("sampler_seed", None)
    if not base_model or base_model in PACKAGED_ALIASES:
        model = PACKAGED_MINILM
    elif Path(base_model).expanduser().is_dir():
        model = str(Path(base_model).expanduser().resolve())
    else:
        model = base_model
    setup = {"base_model": model, "config": config}
    if outlier_texts:
        setup["outlier_texts"] = hashlib.sha256("\n".join(outlier_texts).encode()).hexdigest()
    if config["lr"] is None:
        setup["default_lr_table"] = default_lr_table(config["default_lr_table"])
    return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cache_key(
    method: str,
    seed: int,
    data_version: str,
    base_config: TrainConfig | None = None,
    base_model: str | None = None,
    outlier_texts: Sequence[str] = (),
) -> str:
    """Runs are cached by data, setup and the trained configuration, so methods that train the same model share
    one run (the post-hoc methods and plain CE; recipe v2 and plain CE whenever v2's loss settings are plain
    CE's), and a run of another base model, default-rate table or out-of-scope pool is never taken for this
    one."""
    trained = POST_HOC_METHODS.get(method, method)
    config = method_config(trained, seed, base_config)
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    return f"{data_version[-12:]}-{setup_key(base_config, base_model, outlier_texts)}-{digest}-seed{seed}"


def run_method(
    method: str,
    seed: int,
    splits: DataSplits,
    label_list: Sequence[str],
    *,
    base_model: str | None = None,
    base_config: TrainConfig | None = None,
    cache: OutputCache | None = None,
    rare_threshold: float = RARE_SHARE_THRESHOLD,
    model_and_tokenizer_factory=None,
    data_version: str = "data",
    latency_messages: int = LATENCY_MESSAGES,
    outlier_texts: Sequence[str] = (),
) -> dict:
    """Train (or reuse the stage-1 run) and score one (method, seed) on the test split.

    `outlier_texts` (cleaned out-of-scope messages) are what recipe v2's outlier exposure trains on, as
    `manga-intent train` does with its default pool; without them recipe v2 trains without exposure."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {list(METHODS)}")
    if not splits.test:
        raise ValueError("comparing methods needs test rows (they are scored on the test split)")
    cache = cache or OutputCache(None)
    trained = POST_HOC_METHODS.get(method, method)
    key = cache_key(method, seed, data_version, base_config, base_model, outlier_texts)
    outputs = cache.get(key)
    if outputs is None:
        config = method_config(trained, seed, base_config)
        outputs = train_outputs(
            splits,
            label_list,
            config,
            base_model=base_model,
            model_and_tokenizer_factory=model_and_tokenizer_factory,
            latency_messages=latency_messages,
            with_train_outputs=trained == "plain_ce",
            outlier_texts=outlier_texts,
        )
        cache.put(key, outputs)
    rare = rare_labels_from_shares(label_shares([e.label for e in splits.train], label_list), rare_threshold)
    record = score_run(method, outputs, splits, label_list, rare, seed)
    record["config"] = asdict(method_config(trained, seed, base_config))
    record["setup"] = setup_key(base_config, base_model, outlier_texts)
    return record


# --- across seeds --------------------------------------------------------------------------------


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval across seeds (0 half-width for one value)."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values."""
    order = sorted(p_values, key=p_values.get)
    m, running, out = len(order), 0.0, {}
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[name]))
        out[name] = running
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(b, c), n, 0.5)))


def mcnemar_one_sided(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """(a-only right, b-only right, exact one-sided p that a is worse than b) on the same rows."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    n = only_a + only_b
    return only_a, only_b, 1.0 if n == 0 else float(stats.binom.cdf(only_a, n, 0.5))


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, *, n_boot: int = 5000, seed: int = 0
) -> dict:
    """(seeds x examples) correctness of two methods on the same seeds: resample examples, keep seeds paired.

    Returns the mean accuracy difference a - b, its 95% percentile interval and a two-sided p-value.
    """
    rng = np.random.default_rng(seed)
    diff = correct_a.astype(float) - correct_b.astype(float)  # seeds x examples
    per_example = diff.mean(axis=0)
    n = per_example.shape[0]
    boots = np.array([per_example[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
    observed = float(per_example.mean())
    p = 2 * min((boots <= 0).mean(), (boots >= 0).mean())
    return {
        "difference": observed,
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "p_value": float(min(1.0, p)),
    }


def summarize(
    records: Iterable[dict], label_test: Sequence[int], *, alpha: float = 0.05, n_boot: int = 5000
) -> dict:
    """Per-method means with 95% CIs, and paired tests of every method against recipe v2."""
    by_method: dict[str, dict[int, dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], {})[int(r["seed"])] = r
    y = np.asarray(label_test)
    rows = []
    for method in [m for m in METHODS if m in by_method]:
        runs = list(by_method[method].values())
        rare_names = sorted({name for r in runs for name in r["per_rare_intent_accuracy"]})
        row = {"method": method, "seeds": len(runs), "note": METHOD_NOTES.get(method, "")}
        for metric in ("accuracy", "macro_f1", "rare_class_accuracy", "ece_calibrated", "p95_latency_ms"):
            row[metric] = mean_ci([r[metric] for r in runs])
        row["per_rare_intent_accuracy"] = {
            name: mean_ci([r["per_rare_intent_accuracy"].get(name) for r in runs]) for name in rare_names
        }
        rows.append(row)
    tests = {}
    if REFERENCE in by_method:
        ref = by_method[REFERENCE]
        raw_boot, raw_mcnemar = {}, {}
        for method in by_method:
            if method == REFERENCE:
                continue
            seeds = sorted(set(ref) & set(by_method[method]))
            if not seeds:
                continue
            a = np.array([np.array(by_method[method][s]["predictions"]) == y for s in seeds])
            b = np.array([np.array(ref[s]["predictions"]) == y for s in seeds])
            boot = paired_bootstrap(a, b, n_boot=n_boot)
            discordant_a = int((a & ~b).sum())  # method right, v2 wrong
            discordant_b = int((~a & b).sum())
            tests[method] = {
                "paired_seeds": len(seeds),
                "bootstrap": boot,
                "mcnemar": {
                    "method_only_correct": discordant_a,
                    "v2_only_correct": discordant_b,
                    "p_value": mcnemar_exact(discordant_a, discordant_b),
                },
            }
            raw_boot[method] = boot["p_value"]
            raw_mcnemar[method] = tests[method]["mcnemar"]["p_value"]
        adj_boot, adj_mcnemar = holm(raw_boot), holm(raw_mcnemar)
        for method, t in tests.items():
            t["bootstrap"]["p_holm"] = adj_boot[method]
            t["mcnemar"]["p_holm"] = adj_mcnemar[method]
            t["separated"] = bool(adj_boot[method] < alpha and adj_mcnemar[method] < alpha)
    return {
        "methods": rows,
        "tests_vs_recipe_v2": tests,
        "alpha": alpha,
        "reference": REFERENCE,
        "test_rows": int(len(y)),
    }


def _fmt(pair, scale: float = 100.0, digits: int = 1, unit: str = "%") -> str:
    mean, half = pair
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean * scale:.{digits}f}{unit} ± {half * scale:.{digits}f}"


def markdown_table(summary: dict) -> str:
    """The comparative table: mean ± 95% CI half-width across seeds, tests vs recipe v2."""
    rare_names = sorted({n for row in summary["methods"] for n in row["per_rare_intent_accuracy"]})
    header = [
        "method",
        "key idea",
        "seeds",
        "accuracy",
        "macro-F1",
        "rare acc",
        *[f"{n} acc" for n in rare_names],
        "ECE (calibrated)",
        "P95 latency",
        "Δacc vs v2 [95% CI]",
        "p bootstrap (Holm)",
        "p McNemar (Holm)",
        "separated?",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    tests = summary["tests_vs_recipe_v2"]
    for row in summary["methods"]:
        t = tests.get(row["method"])
        if t:
            boot = t["bootstrap"]
            delta = f"{boot['difference'] * 100:+.1f}pp [{boot['ci95'][0] * 100:+.1f}, {boot['ci95'][1] * 100:+.1f}]"
            p_boot, p_mc = f"{boot['p_holm']:.3f}", f"{t['mcnemar']['p_holm']:.3f}"
            separated = "yes" if t["separated"] else "no"
        else:
            delta = p_boot = p_mc = separated = "(reference)" if row["method"] == REFERENCE else "–"
        cells = [
            row["method"],
            row["note"],
            str(row["seeds"]),
            _fmt(row["accuracy"]),
            _fmt(row["macro_f1"], 1.0, 3, ""),
            _fmt(row["rare_class_accuracy"]),
            *[_fmt(row["per_rare_intent_accuracy"].get(n, (None, None))) for n in rare_names],
            _fmt(row["ece_calibrated"], 1.0, 3, ""),
            _fmt(row["p95_latency_ms"], 1.0, 1, " ms"),
            delta,
            p_boot,
            p_mc,
            separated,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_record(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def labels_of_test_split(splits: DataSplits, label_list: Sequence[str]) -> list[int]:
    index = {label: i for i, label in enumerate(label_list)}
    return [index[e.label] for e in splits.test]


def seed_ensemble(
    cache: OutputCache,
    splits: DataSplits,
    label_list: Sequence[str],
    seeds: Sequence[int],
    *,
    data_version: str,
    size: int = 3,
    method: str = REFERENCE,
    base_config: TrainConfig | None = None,
    base_model: str | None = None,
    outlier_texts: Sequence[str] = (),
) -> dict | None:
    """Logit averaging across `size` training seeds (disjoint groups of the runs' cached outputs).

    The optional served ensemble of item 3: its accuracy/ECE on test (temperature fitted on val
    for the averaged logits) and its single-message latency (the members' latencies summed, as they
    would run one after another on one core) per group, beside the single models of the same seeds.
    """
    index = {label: i for i, label in enumerate(label_list)}
    y_val = np.array([index[e.label] for e in splits.val])
    y_test = np.array([index[e.label] for e in splits.test])
    outputs = {
        s: cache.get(cache_key(method, s, data_version, base_config, base_model, outlier_texts))
        for s in seeds
    }
    available = [s for s in seeds if outputs[s] is not None]
    groups = [available[i : i + size] for i in range(0, len(available) - size + 1, size)]
    if not groups:
        return None
    rows = []
    for group in groups:
        val = np.mean([outputs[s]["val_logits"] for s in group], axis=0)
        test = np.mean([outputs[s]["test_logits"] for s in group], axis=0)
        temperature = fit_temperature(val, y_val).temperature
        probs = softmax(test, temperature)
        latency = np.sum([np.asarray(outputs[s]["latency_ms"]) for s in group], axis=0)
        singles = [float((outputs[s]["test_logits"].argmax(1) == y_test).mean()) for s in group]
        rows.append(
            {
                "seeds": group,
                "accuracy": float((probs.argmax(1) == y_test).mean()),
                "single_model_accuracy_mean": float(np.mean(singles)),
                "ece_calibrated": expected_calibration_error(probs, y_test),
                "p95_latency_ms": float(np.percentile(latency, 95)),
            }
        )
    return {
        "method": method,
        "size": size,
        "groups": rows,
        "accuracy": mean_ci([r["accuracy"] for r in rows]),
        "single_model_accuracy": mean_ci([r["single_model_accuracy_mean"] for r in rows]),
        "p95_latency_ms": mean_ci([r["p95_latency_ms"] for r in rows]),
    }
