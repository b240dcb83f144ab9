# A FastAPI ingress with /predict online, calling two model deployments
# that each take half a GPU, and an offline entry point (offline.py) that
# produces the same HTTP requests to the application's ingress topic:
# both run the same route and the same business logic (logic.py).
#
#   sluice deploy --python examples/python/fastapi_offline --import-path moderate:app --name moderate
#   curl -d '{"text":"a lovely day"}' -H 'content-type: application/json' localhost:8000/moderate/predict
#   python offline.py --brokers 127.0.0.1:9092 --app moderate texts.jsonl
#
# MODERATE_GPUS (default 0.5) is each model's share of a GPU; 0 runs them
# on CPUs, on a machine without GPUs.
import asyncio
import os

from fastapi import FastAPI
from pydantic import BaseModel

from logic import decide
from sluice import serve
from sluice.serve.handle import DeploymentHandle

GPUS = float(os.environ.get("MODERATE_GPUS", "0.5"))
POSITIVE = {"good", "great", "lovely", "love", "happy"}
NEGATIVE = {"bad", "awful", "sad", "hate", "terrible"}
TOXIC = {"idiot", "stupid", "hate"}


@serve.deployment(ray_actor_options={"num_gpus": GPUS})
class Sentiment:
    def __call__(self, text: str) -> float:
        words = text.lower().split()
        score = sum((w in POSITIVE) - (w in NEGATIVE) for w in words)
        return score / max(len(words), 1)


@serve.deployment(ray_actor_options={"num_gpus": GPUS})
class Toxicity:
    def __call__(self, text: str) -> float:
        words = text.lower().split()
        return min(1.0, 2 * sum(w in TOXIC for w in words) / max(len(words), 1))


class Text(BaseModel):
    text: str


api = FastAPI()


@serve.deployment
@serve.ingress(api)
class Moderator:
    def __init__(self, sentiment: DeploymentHandle, toxicity: DeploymentHandle):
        self.sentiment = sentiment
        self.toxicity = toxicity

    @api.post("/predict")
    async def predict(self, body: Text) -> dict:
        sentiment, toxicity = await asyncio.gather(self.sentiment.remote(body.text), self.toxicity.remote(body.text))
        return decide(body.text, sentiment, toxicity)


app = Moderator.bind(Sentiment.bind(), Toxicity.bind())
