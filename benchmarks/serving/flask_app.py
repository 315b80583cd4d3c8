"""The builder's design: the functions behind Flask's development server (``app.run(threaded=True)``).

    python flask_app.py PORT

Werkzeug's default request log (stderr, which run.py sends to a file under work/logs) is left on,
because the design being measured had it on.
"""

import sys

from flask import Flask, jsonify, request

from functions import SERVED

app = Flask(__name__)


def endpoint(fn):
    def call():
        payload = request.get_json(force=True)
        result = fn(**payload) if isinstance(payload, dict) else fn(*payload)
        return jsonify(result)

    return call


for name, (fn, _) in SERVED.items():
    app.add_url_rule(f"/{name}", name, endpoint(fn), methods=["POST"])

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
