"""Demo agent 2.0 (tutorial 02's second release). One round is what tutorial 02's
agents do on every node: three sensor readings through tool.echo and one tool.shell
(always forbidden). Release 2 ships it with a policy bundle that permits tool.echo
only to the operators' console agent, so on a node running release 2 every call of
this agent is denied (fail closed): the deny rate the behaviour gate sees."""
import json
import os
import urllib.request

RUNTIME = os.environ.get("AUTONOMY_RUNTIME_URL", "http://127.0.0.1:7777")
TOKEN = os.environ.get("AUTONOMY_AGENT_TOKEN", "")
VERSION = "2.0.0"


def call(kind, params):
    req = urllib.request.Request(f"{RUNTIME}/v1/tool", data=json.dumps({"kind": kind, "params": params}).encode(),
                                 headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


if __name__ == "__main__":
    for sensor in range(3):
        print(call("tool.echo", {"text": f"reading sensor {sensor}"}))
    print(call("tool.shell", {"command": "id"}))
