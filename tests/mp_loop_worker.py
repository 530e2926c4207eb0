"""`scl-hf run` under `accelerate launch`, recording which process creates a Hub client or server.

Each process appends ``client@<rank>`` for every ``huggingface_hub.HfApi`` it builds and ``server@<rank>``
for every embedded Hub it starts to the file ``$SCL_HF_TEST_HUB_CALLS``; then the real code runs.
The libraries are imported first: importing datasets builds huggingface_hub's module-level file
system object (a client that sends nothing), which is not a call of the loop.
"""

import os
import sys

import datasets  # noqa: F401
import huggingface_hub
import transformers  # noqa: F401

import scl_hf.hub.server
import scl_hf.loop  # noqa: F401

RANK = os.environ.get("RANK", "0")
CALLS = os.environ["SCL_HF_TEST_HUB_CALLS"]


def record(what: str) -> None:
    with open(CALLS, "a", encoding="utf-8") as f:
        f.write(f"{what}@{RANK}\n")


def recording(cls, method: str, what: str) -> None:
    real = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        record(what)
        return real(self, *args, **kwargs)

    setattr(cls, method, wrapper)


recording(huggingface_hub.HfApi, "__init__", "client")
recording(scl_hf.hub.server.HubServer, "start", "server")

if __name__ == "__main__":
    from scl_hf.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
