"""The baseline a new user would write: FastAPI + `transformers.pipeline`, one uvicorn process, defaults.

  python bench/plain_pipeline_service.py --model DIR --port 8002

Same trained model directory as our service (eager PyTorch, no calibration, no OOD, no log); a sync
endpoint, so FastAPI runs it in its thread pool. Used by bench/serving_load.py as the reference.
"""

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()

    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import pipeline

    # the model directory carries its modeling.py: plain transformers runs it as local remote code
    classifier = pipeline(
        "text-classification", model=args.model, tokenizer=args.model, device=-1, trust_remote_code=True
    )
    app = FastAPI()

    class Message(BaseModel):
        text: str
        channel: str = "web"

    @app.post("/v1/classify")
    def classify(message: Message) -> dict:
        top = classifier(message.text)[0]
        return {"intent": top["label"], "confidence": top["score"]}

    @app.get("/readyz")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
