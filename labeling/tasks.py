"""Label Studio tasks for a batch: the message, where it came from, and (only where allowed) the model's guess.

`purpose` says why a message is in Label Studio: `active_learning` (uncertainty-picked, pre-filled with the
model's guess to save time), `audit` (a random slice of traffic for unbiased accuracy: never pre-filled,
so the labeller is not anchored by the model), `segment_relabel`, `discovery` and `multi_intent` (review
batches, not pre-filled). The prediction's own fields travel in the task so audit labels can be scored
without going back to the log.
"""

from labeling.label_config import OUT_OF_SCOPE, choice_result

PREFILLED_PURPOSES = ("active_learning", "segment_relabel")


def label_studio_tasks(batch: list[dict], purpose: str = "active_learning") -> list[dict]:
    """Tasks for log rows picked by a batch (rows carry `message_key`; `uncertainty`/`strategy` optional)."""
    tasks = []
    for row in batch:
        task = {
            "data": {
                "text": row["text"],
                "message_key": row["message_key"],
                "purpose": purpose,
                "channel": row["channel"],
                "prediction_id": row["id"],
                "request_id": row.get("request_id"),
                "ts": row.get("ts"),
                "predicted_intent": row["intent"],
                "confidence": row["confidence"],
                "is_ood": bool(row["is_ood"]),
                "secondary_intent": row.get("secondary_intent"),
                "probs": row.get("probs") or {},
                "model_version": row["model_version"],
                "uncertainty": round(row.get("uncertainty", 0.0), 4),
                "strategy": row.get("strategy", purpose),
            }
        }
        if purpose in PREFILLED_PURPOSES and not row.get("flag_reason"):
            task["predictions"] = [
                {
                    "model_version": row["model_version"],
                    "score": row["confidence"],
                    "result": [choice_result("intent", OUT_OF_SCOPE if row["is_ood"] else row["intent"])],
                }
            ]
        tasks.append(task)
    return tasks
