"""Demo agent: asks the AutonomyOps runtime to run tools; policy decides."""
import json
import os
import urllib.request

RUNTIME = os.environ.get("AUTONOMY_RUNTIME_URL", "http://127.0.0.1:7777")


def call(kind, params):
    req = urllib.request.Request(f"{RUNTIME}/v1/tool", data=json.dumps({"kind": kind, "params": params}).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


if __name__ == "__main__":
    print(call("tool.echo", {"text": "hello from the edge"}))
    print(call("tool.shell", {"command": "id"}))
