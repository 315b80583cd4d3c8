"""MLflow's requirement inference on one case, in a fresh process.

    .venv/bin/python mlflow_probe.py REQUEST.json

The notebook runs as in notebook_runner.py; then, as a user would in one more cell, the function is
wrapped in a ``mlflow.pyfunc.PythonModel`` whose ``predict`` calls it, saved with the sample as the
input example (so MLflow's capture also runs ``predict``, its most thorough mode), and
``mlflow.models.infer_pip_requirements(model_dir, "python_function")`` is timed. MLflow leaves
itself out of the list; uv-project detection is switched off so the capture is what is measured.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
from notebook_exec import run_cell, run_notebook  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
os.environ["MLFLOW_UV_AUTO_DETECT"] = "false"

WRAPPER_CELL = '''
import json
import mlflow.pyfunc

class PublishedFunction(mlflow.pyfunc.PythonModel):
    def __init__(self, fn):
        self.fn = fn

    def predict(self, model_input: list[str], params=None) -> list[str]:
        return [repr(self.fn(*json.loads(text))) for text in model_input]
'''


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out: dict = {}
    logging.basicConfig(filename=request["log"], level=logging.WARNING, force=True)
    try:
        namespace = run_notebook(Path(request["notebook"]))
        published = eval(request["function"], namespace)  # noqa: S307 (our own corpus)
        run_cell(WRAPPER_CELL, namespace)
        import cloudpickle
        import mlflow.models
        import mlflow.pyfunc

        model_dir = Path(request["model_dir"])
        shutil.rmtree(model_dir, ignore_errors=True)
        for name in request["local"]:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        start = time.perf_counter()
        mlflow.pyfunc.save_model(
            str(model_dir),
            python_model=namespace["PublishedFunction"](published),
            input_example=[json.dumps(request["sample"])],
            pip_requirements=[],  # no inference at save time: it is timed on its own below
        )
        out["save_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        inferred = mlflow.models.infer_pip_requirements(str(model_dir), mlflow.pyfunc.FLAVOR_NAME)
        out["seconds"] = time.perf_counter() - start
        out["raw"] = inferred
        out["declared"] = [line.split("==")[0].strip() for line in inferred if not line.startswith("-")]
    except BaseException:
        out["error"] = traceback.format_exc(limit=5)
        out.setdefault("declared", [])
    Path(request["out"]).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
