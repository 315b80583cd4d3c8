"""The functions every server in the benchmark serves, as a notebook cell would define them.

run.py executes this source in a fresh ``__main__``-like namespace before publishing, so the
function server gets them pickled by value (as from a notebook); the Flask and bare Starlette apps
simply import this module. One source means every server runs exactly the same code.
"""

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris()
model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)

# What each function is called with in a request body (the JSON list of positional arguments).
ADD_BODY = [1, 2]
PREDICT_BODY = [[5.1, 3.5, 1.4, 0.2]]


def add(a, b):
    return a + b


def predict(row):
    """The class of one iris flower (four measurements): one row per request."""
    return int(model.predict(np.asarray([row], dtype=float))[0])


def predict_rows(rows):
    """Vectorised predict: a list of rows gives a list of classes, a single row one class.

    Accepting both shapes (and the one-extra-level list of argument lists) lets the same function
    serve unbatched, batched, and whatever a batching server hands it, with the same results.
    """
    array = np.asarray(rows, dtype=float)
    if array.ndim == 1:
        return int(model.predict(array[None, :])[0])
    return model.predict(array.reshape(-1, array.shape[-1])).tolist()


SERVED = {"add": (add, ADD_BODY), "predict": (predict, PREDICT_BODY)}
