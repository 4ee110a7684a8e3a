"""Serve an evonas model exported for serving, in a process that imports only JAX and numpy.

    evonas export RUN_DIR                      # writes RUN_DIR/best/model.stablehlo
    python examples/serve_stablehlo.py RUN_DIR/best/model.stablehlo --input x.npy --output y.npy
    python examples/serve_stablehlo.py RUN_DIR/best/model.stablehlo --port 8000
    curl -s localhost:8000 -d '{"inputs": [[...], [...]]}'   # -> {"logits": ..., "classes": ...}

The file is a serialised ``jax.export.Exported``: the network with its parameters baked in and a
symbolic batch dimension, so any batch size runs without recompiling the model's definition.
Nothing of evonas, Flax or optax is needed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import numpy as np


def load(path: str) -> jax.export.Exported:
    with open(path, "rb") as f:
        return jax.export.deserialize(bytearray(f.read()))


def predict(exported: jax.export.Exported, x: np.ndarray) -> np.ndarray:
    want = exported.in_avals[0].shape[1:]
    x = np.asarray(x, np.float32)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != tuple(want):
        raise ValueError(f"inputs of shape {x.shape} given; the model takes [batch, "
                         f"{', '.join(map(str, want))}]")
    return np.asarray(exported.call(x))


def serve(exported: jax.export.Exported, port: int, host: str = "127.0.0.1") -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                logits = predict(exported, np.asarray(body["inputs"], np.float32))
                reply, status = {"logits": logits.tolist(),
                                 "classes": logits.argmax(-1).tolist()}, 200
            except (ValueError, KeyError, TypeError) as err:
                reply, status = {"error": str(err)}, 400
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((host, port), Handler)
    print(f"serving on http://{host}:{port}", file=sys.stderr)
    server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model.stablehlo file")
    parser.add_argument("--input", help="a .npy of inputs, float32[batch, ...]")
    parser.add_argument("--output", help="where to write the logits (.npy); default: print "
                                         "the predicted classes")
    parser.add_argument("--port", type=int, help="serve over HTTP on this port instead")
    args = parser.parse_args(argv)
    exported = load(args.model)
    if args.port is not None:
        serve(exported, args.port)
        return
    if args.input is None:
        parser.error("give --input x.npy, or --port N to serve over HTTP")
    logits = predict(exported, np.load(args.input))
    if args.output:
        np.save(args.output, logits)
    else:
        print(json.dumps({"classes": logits.argmax(-1).tolist()}))


if __name__ == "__main__":
    main()
