"""Turning several annotators' answers into one training label, and flagging disagreement."""

from collections import Counter


def majority_vote(annotations: list[dict]) -> dict:
    """`annotations`: dicts with `intent`, `secondary`, `annotator`. Ties have no label and are flagged."""
    if not annotations:
        raise ValueError("no annotations to vote on")
    votes = Counter(a["intent"] for a in annotations)
    (winner, top), *rest = votes.most_common() + [(None, 0)]
    tie = bool(rest) and rest[0][1] == top
    secondaries = Counter(a["secondary"] for a in annotations if a["intent"] == winner and a.get("secondary"))
    return {
        "label": None if tie else winner,
        "secondary": secondaries.most_common(1)[0][0] if secondaries and not tie else None,
        "votes": dict(votes),
        "annotators": sorted({str(a["annotator"]) for a in annotations}),
        "agreement": top / len(annotations),
        "disagreement": len(votes) > 1,
        "tie": tie,
    }
