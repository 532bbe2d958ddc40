"""A torchrun rank module for tests/trainer/test_launch.py: rank 1 fails (an exception or an abort), the others wait
to be stopped, as a healthy rank waits in a collective for a peer that died ("wait": every rank waits)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record


@record
def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ["RANK"])
    print(f"rank {rank} starting", file=sys.stderr, flush=True)
    Path(spec["pids"], str(rank)).write_text(str(os.getpid()))
    if rank != 1 or spec["how"] == "wait":
        time.sleep(120)  # torchrun stops it once rank 1 has failed
        return
    print("rank 1: about to fail", file=sys.stderr, flush=True)
    if spec["how"] == "abort":
        os.abort()  # what a C++ library does on an uncaught exception (SIGABRT, no Python traceback)
    raise ValueError("rank 1 cannot go on: the data ran out")


if __name__ == "__main__":
    main(sys.argv[1])
