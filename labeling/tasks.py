"""Label Studio tasks for an active-learning batch: the message, where it came from, the model's guess."""

from labeling.label_config import OUT_OF_SCOPE, choice_result


def label_studio_tasks(batch: list[dict]) -> list[dict]:
    """Tasks (data + pre-annotation) for rows picked by `manga_intent.active_learning.select_batch`."""
    return [
        {
            "data": {
                "text": row["text"],
                "message_key": row["message_key"],
                "channel": row["channel"],
                "prediction_id": row["id"],
                "predicted_intent": row["intent"],
                "model_version": row["model_version"],
                "uncertainty": round(row["uncertainty"], 4),
                "strategy": row["strategy"],
            },
            "predictions": [
                {
                    "model_version": row["model_version"],
                    "score": row["confidence"],
                    "result": [choice_result("intent", OUT_OF_SCOPE if row["is_ood"] else row["intent"])],
                }
            ],
        }
        for row in batch
    ]
