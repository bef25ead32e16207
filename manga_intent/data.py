"""Loading, cleaning and validating labelled JSONL, the stratified split and class weights.

Every problem in an input file is reported with its line number, so a user can fix the file
instead of reading a traceback from inside torch. In quarantine mode bad rows are set aside
and counted, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from manga_intent.leetspeak import fold_leetspeak

SPLITS = ("train", "val", "test")
#: The split seed stays fixed across training seeds, so a seed sweep compares models on the same test set.
SPLIT_SEED = 42
_MAX_REPORTED_PROBLEMS = 20
_PUNCTUATION_RUN = re.compile(r"([!?.,;:~*#=_-])\1{3,}")
_WHITESPACE_RUN = re.compile(r"\s+")
_NOT_TEXT = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef"
    + "".join(chr(p << 16 | 0xFFFE) + chr(p << 16 | 0xFFFF) for p in range(17))
    + "]"
)


class DataValidationError(ValueError):
    """Raised when an input file has rows that cannot be used; the message names the lines."""

    def __init__(self, path: str | Path, problems: Sequence[RowProblem]):
        self.path = str(path)
        self.problems = list(problems)
        shown = "\n".join(f"  line {p.line}: {p.reason}" for p in self.problems[:_MAX_REPORTED_PROBLEMS])
        more = len(self.problems) - _MAX_REPORTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        lines = ", ".join(str(p.line) for p in self.problems[:_MAX_REPORTED_PROBLEMS])
        super().__init__(
            f"{self.path}: {len(self.problems)} invalid row(s) (lines {lines}{'…' if more > 0 else ''}):\n"
            f"{shown}{tail}\n"
            "Fix these rows, or pass quarantine=True (--quarantine) to set them aside and count them."
        )


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class Example:
    """One labelled message. `meta` keeps any extra fields (segment, channel, source...)."""

    text: str
    label: str
    split: str | None = None
    line: int | None = None
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass
class LoadedDataset:
    examples: list[Example]
    quarantined: list[RowProblem]
    path: str

    @property
    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows per reason kind (the part of the reason before ':')."""
        return dict(Counter(p.reason.split(":")[0] for p in self.quarantined))


def clean_text(text: str) -> str:
    """Normalise a message without destroying manga-specific or Japanese content.

    The one normalisation shared by training (rows are cleaned when loaded) and serving (the compiled
    artifact cleans every message), so both see the same text:

    - NFKC folds full-width/half-width forms (ｖｏｌ１２ → vol12, half-width katakana) and mathematical
      alphanumerics, keeping kana, kanji and accented jargon such as "tankōbon";
    - invisible format characters (Unicode category Cf: zero-width spaces and joiners, bidi overrides and
      isolates, soft hyphens, BOMs) are removed, so "or\u200bder" and "\u202eorder\u202c" read "order";
    - Latin lookalikes from other scripts are folded to Latin (`fold_homoglyphs`) where a word is
      spelled in Latin, so "оrdеr" with Cyrillic о/е reads "order" while Russian or Greek text stays itself;
    - leetspeak is folded to letters where digits stand between letters or spell a known word
      ("wh3r3 is my 0rd3r" → "where is my order"), never in numbers ("vol12", "ps5", "3ds";
      `manga_intent.leetspeak`);
    - runs of 4+ identical punctuation marks become three ("!!!!!!!!" → "!!!", an ellipsis stays);
    - control characters are removed (whitespace controls become spaces, so "a\nb" stays two words) and
      whitespace is collapsed.

    Case is kept: uncased tokenizers lower-case themselves, cased ones (RoBERTa) need the case.
    """
    text = unicodedata.normalize("NFKC", text)
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc":
            chars.append(" " if ch.isspace() else "")
        elif category != "Cf":
            chars.append(ch)
    text = fold_leetspeak(fold_homoglyphs("".join(chars)))
    text = _PUNCTUATION_RUN.sub(r"\1\1\1", text)
    return _WHITESPACE_RUN.sub(" ", text).strip()


@lru_cache(maxsize=1)
def _latin_lookalikes() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter Unicode's confusables table says it imitates (no CJK/kana).

    Where the table names only another non-ASCII Latin letter (Greek τ -> LATIN LETTER SMALL CAPITAL T),
    that letter's own base letter is taken (t), so a lookalike of a lookalike still folds; and a lookalike's
    NFKC image folds like the lookalike itself.
    """
    import confusable_homoglyphs

    table = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8"))
    out = {}
    for ch, entries in table.items():
        if len(ch) != 1 or ord(ch) < 128:
            continue
        targets = [e["c"] for e in entries if len(e["c"]) == 1]
        direct = [t for t in targets if t.isascii() and t.isalpha()]
        via_latin = [b for b in map(_latin_base_letter, targets) if b]
        if direct or via_latin:
            out[ch] = (direct or via_latin)[0]
    # clean_text folds after NFKC, which turns some lookalikes into letters the table does not list (lunate
    # sigma ϲ -> final sigma ς): those images fold to the same Latin letter
    for ch, letter in list(out.items()):
        image = unicodedata.normalize("NFKC", ch)
        if len(image) == 1 and not image.isascii() and image.isalpha() and image not in out:
            out[image] = letter
    return out


_LATIN_LETTER_NAME = re.compile(r"LATIN (SMALL |CAPITAL )?LETTER (SMALL CAPITAL )?([A-Z])")


def _latin_base_letter(ch: str) -> str | None:
    """The ASCII letter a non-ASCII Latin letter is a form of ("ᴛ" small capital T -> "t"), or None."""
    if ch.isascii():
        return None
    match = _LATIN_LETTER_NAME.fullmatch(unicodedata.name(ch, ""))
    if not match:
        return None
    small = match.group(1) != "CAPITAL " or match.group(2) is not None
    return match.group(3).lower() if small else match.group(3)


def _script(ch: str) -> str:
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]


def fold_homoglyphs(text: str) -> str:
    """Fold lookalike letters to Latin inside words written in Latin, leaving genuine foreign text alone.

    A word (a run of non-space characters) is folded when it contains an ASCII letter ("оrdеr"), or when
    every letter in it is a lookalike and no letter of those scripts in the whole message is a
    non-lookalike — a Russian sentence ("Какая погода") has Cyrillic letters with no Latin twin, so none of
    its words is touched, while a fully disguised "рау" in an English message is folded.
    """
    table = _latin_lookalikes()
    if not any(ch in table for ch in text):
        return text
    genuine = {_script(ch) for ch in text if ch.isalpha() and not ch.isascii() and ch not in table}
    words = text.split(" ")
    for i, word in enumerate(words):
        if not any(ch in table for ch in word):
            continue
        has_latin = any(ch.isascii() and ch.isalpha() for ch in word)
        letters = [ch for ch in word if ch.isalpha() and not ch.isascii()]
        disguised = all(ch in table for ch in letters) and not ({_script(ch) for ch in letters} & genuine)
        if has_latin or disguised:
            words[i] = "".join(table.get(ch, ch) for ch in word)
    return " ".join(words)


def invalid_text_reason(text: str) -> str | None:
    """Why `text` is not usable text, or None: lone surrogates (not encodable as UTF-8), Unicode
    noncharacters, or nothing left after `clean_text` (only whitespace, control or format characters)."""
    bad = _NOT_TEXT.search(text)
    if bad:
        code, position = ord(bad.group()), bad.start()
        if 0xD800 <= code <= 0xDFFF:
            return f"lone surrogate U+{code:04X} at character {position} is not valid Unicode text"
        return f"noncharacter U+{code:04X} at character {position} is not valid text"
    if not clean_text(text):
        return "text is empty (nothing but whitespace, control or format characters)"
    return None


def normalized_key(text: str) -> str:
    """Key for near-duplicate checks: cleaned, case-folded, punctuation and spaces removed."""
    text = clean_text(text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _check_row(obj: object, allowed_labels: frozenset[str] | None) -> tuple[Example | None, str | None]:
    if not isinstance(obj, dict):
        return None, f'not a JSON object: expected {{"text": ..., "label": ...}}, got {type(obj).__name__}'
    if "text" not in obj:
        return None, "missing field 'text'"
    if not isinstance(obj["text"], str):
        return None, f"wrong type: 'text' must be a string, got {type(obj['text']).__name__}"
    if "label" not in obj:
        return None, "missing field 'label'"
    if not isinstance(obj["label"], str):
        return None, f"wrong type: 'label' must be a string, got {type(obj['label']).__name__}"
    label = obj["label"].strip()
    if not label:
        return None, "empty label"
    if allowed_labels is not None and label not in allowed_labels:
        return None, f"unknown label: {label!r} is not one of {sorted(allowed_labels)}"
    text = clean_text(obj["text"])
    if not text:
        return None, "empty text: nothing left after removing whitespace and control characters"
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        return None, f"bad split: {split!r} must be one of {list(SPLITS)} or absent"
    meta = {k: v for k, v in obj.items() if k not in ("text", "label", "split")}
    return Example(text=text, label=label, split=split, meta=meta), None


def parse_jsonl_lines(
    lines: Iterable[str],
    *,
    source: str = "<memory>",
    allowed_labels: Iterable[str] | None = None,
    quarantine: bool = False,
) -> LoadedDataset:
    """Validate JSONL rows; raise DataValidationError naming every bad line unless quarantining."""
    allowed = frozenset(allowed_labels) if allowed_labels is not None else None
    examples: list[Example] = []
    problems: list[RowProblem] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue  # blank lines carry no data
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(RowProblem(number, f"invalid JSON: {exc.msg} at column {exc.colno}", raw))
            continue
        example, reason = _check_row(obj, allowed)
        if reason is not None:
            problems.append(RowProblem(number, reason, raw))
        else:
            examples.append(Example(example.text, example.label, example.split, number, example.meta))
    if problems and not quarantine:
        raise DataValidationError(source, problems)
    split_values = {e.split for e in examples}
    if None in split_values and len(split_values) > 1:
        missing = [e.line for e in examples if e.split is None][:_MAX_REPORTED_PROBLEMS]
        raise DataValidationError(
            source,
            [
                RowProblem(n, "missing 'split': other rows have one; give every row a split or none", "")
                for n in missing
            ],
        )
    if not examples:
        raise DataValidationError(source, problems or [RowProblem(0, "the file holds no labelled rows", "")])
    return LoadedDataset(examples, problems, source)


def load_jsonl(
    path: str | Path,
    *,
    allowed_labels: Iterable[str] | None = None,
    quarantine: bool = False,
) -> LoadedDataset:
    """Read a labelled JSONL file (`text`, `label`, optional `split`) with line-level validation."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataValidationError(
            path, [RowProblem(line, f"not valid UTF-8 (byte {exc.start})", "")]
        ) from None
    return parse_jsonl_lines(
        content.splitlines(), source=str(path), allowed_labels=allowed_labels, quarantine=quarantine
    )


@dataclass
class DataSplits:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    val_source: str = "file"
    """`file` (the data's own split column), `stratified` (80/10/10 made here) or `carved_from_train`."""

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def describe(self) -> dict:
        return {"sizes": self.sizes(), "val_source": self.val_source}


def stratified_split(
    examples: Sequence[Example], *, seed: int = 42, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> DataSplits:
    """80/10/10 split that keeps each label's share in every part (deterministic per seed).

    Each label's examples are shuffled with their own seeded RNG and cut by rounding, so rare
    labels keep their share too; a label with at least 3 examples gets at least one in val and
    one in test.
    """
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"bad split fractions val={val_fraction} test={test_fraction}")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    parts = DataSplits([], [], [])
    for label in sorted(by_label):
        group = list(by_label[label])
        random.Random(f"{seed}:{label}").shuffle(group)
        n = len(group)
        n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
        n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
        parts.test.extend(group[:n_test])
        parts.val.extend(group[n_test : n_test + n_val])
        parts.train.extend(group[n_test + n_val :])
    for part in (parts.train, parts.val, parts.test):
        random.Random(seed).shuffle(part)
    return parts


def carve_validation(train: Sequence[Example], *, seed: int = 42, fraction: float = 0.1) -> tuple[list, list]:
    """Stratified (train, val) from a train-only pool: each label keeps its share, labels with >= 2 rows
    give at least one to val (so every label is scored), singletons stay in train."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in train:
        by_label[ex.label].append(ex)
    kept, val = [], []
    for label in sorted(by_label):
        group = list(by_label[label])
        random.Random(f"{seed}:val:{label}").shuffle(group)
        n_val = max(1, round(len(group) * fraction)) if len(group) >= 2 else 0
        val.extend(group[:n_val])
        kept.extend(group[n_val:])
    random.Random(seed).shuffle(kept)
    random.Random(seed).shuffle(val)
    return kept, val


def stratified_subsample(examples: Sequence[Example], n: int, *, seed: int = 42) -> list[Example]:
    """`n` of `examples` (all when `n` is 0 or at least their count), each label keeping its share and every
    label at least one row where `n` allows; seeded, so every trial of a study searches the same rows.

    A prefix would not do: a dataset snapshot lists the newest human labels last, so a cut drops them first.
    """
    if n < 0:
        raise ValueError(f"subsample size must be >= 0 (0 = all rows), got {n}")
    if n == 0 or n >= len(examples):
        return list(examples)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    labels = sorted(by_label)
    exact = {label: n * len(by_label[label]) / len(examples) for label in labels}
    take = {label: min(len(by_label[label]), max(1, int(exact[label]))) for label in labels}
    # then the largest remainders (ties by label) fill up to n
    order = sorted(labels, key=lambda label: (-(exact[label] - int(exact[label])), label))
    while sum(take.values()) > n:  # the floor of one row overshot: take from the most over-served label
        above_one = [lab for lab in labels if take[lab] > 1]
        if above_one:
            take[max(above_one, key=lambda lab: (take[lab] - exact[lab], lab))] -= 1
        else:  # fewer rows than labels: the rarest labels go without
            take[min((lab for lab in labels if take[lab]), key=lambda lab: (exact[lab], lab))] = 0
    for label in order * 2:
        if sum(take.values()) >= n:
            break
        if take[label] < len(by_label[label]):
            take[label] += 1
    picked = []
    for label in labels:
        group = list(by_label[label])
        random.Random(f"{seed}:subsample:{label}").shuffle(group)
        picked.extend(group[: take[label]])
    random.Random(seed).shuffle(picked)
    return picked


def make_splits(examples: Sequence[Example], *, seed: int = 42, val_fraction: float = 0.1) -> DataSplits:
    """Use the file's own `split` column when present, otherwise make the stratified 80/10/10 split.

    A file with `train` and `test` rows but no `val` (the usual public format) gets a stratified
    validation set carved from `train` (seeded; `val_source` says so). `test` rows are never trained
    on. A file with no `train` rows cannot be trained on (it can still be evaluated).
    """
    if examples and examples[0].split is not None:
        parts = DataSplits(*([e for e in examples if e.split == s] for s in SPLITS))
        if not parts.train:
            raise ValueError(
                f"the data's 'split' column has no 'train' rows (it has {parts.sizes()}); a file to train on "
                "needs train rows, or no split column at all for the stratified 80/10/10 split"
            )
        if not parts.val:
            train, val = carve_validation(parts.train, seed=seed, fraction=val_fraction)
            if not val:
                raise ValueError("no 'val' rows and too few 'train' rows per label to carve a validation set")
            return DataSplits(train, val, parts.test, val_source="carved_from_train")
        return parts
    return replace(stratified_split(examples, seed=seed), val_source="stratified")


def examples_for_split(examples: Sequence[Example], split: str, *, seed: int = 42) -> list[Example]:
    """The rows `evaluate --split` scores: `all` = every row; with a split column, that split's rows
    (val carved from train exactly as training did when the file has none); without one, that part
    of the stratified split."""
    if split == "all":
        return list(examples)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
    if examples and examples[0].split is not None:
        rows = [e for e in examples if e.split == split]
        if rows:
            return rows
        present = sorted({e.split for e in examples})
        if split == "val" and "train" in present:
            return make_splits(examples, seed=seed).val
        raise ValueError(
            f"the data has no '{split}' rows (its splits: {present}); use --split "
            f"{' or '.join(present)} or --split all"
        )
    return getattr(stratified_split(examples, seed=seed), split)


def class_weights(train_labels: Sequence[str], label_list: Sequence[str]) -> list[float]:
    """Inverse-frequency weights normalised to sum to 1, as in the seed:

    alpha_c = (1 / freq_c) / sum_j (1 / freq_j)
    """
    counts = Counter(train_labels)
    missing = [label for label in label_list if counts[label] == 0]
    if missing:
        raise ValueError(f"labels with no training examples: {missing}; every label needs some")
    total = len(train_labels)
    inverse = [total / counts[label] for label in label_list]
    norm = sum(inverse)
    return [w / norm for w in inverse]


def label_shares(labels: Sequence[str], label_list: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    return {label: counts[label] / max(len(labels), 1) for label in label_list}


def data_hash(examples: Iterable[Example]) -> str:
    """Order-independent content hash of (text, label, split): the dataset's version."""
    rows = sorted(json.dumps([e.text, e.label, e.split], ensure_ascii=False) for e in examples)
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def infer_label_list(examples: Iterable[Example]) -> list[str]:
    """Label set of a file, in a stable order (the 10 intents' canonical order if they match)."""
    from manga_intent.taxonomy import INTENTS

    found = {e.label for e in examples}
    if found <= set(INTENTS):
        return [i for i in INTENTS if i in found]
    return sorted(found)
