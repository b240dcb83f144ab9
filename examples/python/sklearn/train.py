"""Trains the example's three iris classifiers, deterministically (a
fixed seed and split), and writes each as a directory to push with
`sluice models push NAME DIR --format sklearn-joblib`:

    python train.py OUT
    OUT/iris-logistic/model.joblib   logistic regression
    OUT/iris-tree/model.joblib       a depth-3 decision tree
    OUT/iris-knn/model.joblib        5 nearest neighbours
    OUT/signature.json               their inputs and outputs (--signature)
    OUT/expected.json                each model's labels and probabilities
                                     on the held-out rows, for the tests
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

SEED = 7

SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}


def main(out: Path) -> None:
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    models = {
        "iris-logistic": LogisticRegression(max_iter=1000),
        "iris-tree": DecisionTreeClassifier(max_depth=3, random_state=SEED),
        "iris-knn": KNeighborsClassifier(n_neighbors=5),
    }
    probe = x_test.astype(np.float32)
    expected: dict[str, object] = {"input": probe.tolist()}
    for name, model in models.items():
        model.fit(x_train, y_train)
        (out / name).mkdir(parents=True, exist_ok=True)
        joblib.dump(model, out / name / "model.joblib")
        expected[name] = {
            "label": model.predict(probe.astype(np.float64)).tolist(),
            "probabilities": model.predict_proba(probe.astype(np.float64)).astype(np.float32).tolist(),
        }
    (out / "signature.json").write_text(json.dumps(SIGNATURE, indent=1))
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python train.py OUT")
    main(Path(sys.argv[1]))
