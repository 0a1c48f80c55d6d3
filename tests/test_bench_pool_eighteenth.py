"""bench_molecules' process pool ends by its workers finishing, not by Pool.terminate.

Was: the pool's `with` block ended it with Pool.terminate, which takes the task queue's
lock (reading away the end-of-work messages) and then signals and joins each worker; in
about one run in fifty a worker was left waiting for that lock (its SIGTERM came just
before it blocked, and a Python signal handler runs only between bytecodes) and the parent
waited for it in join forever (CI: test_bench_molecules_rates_the_molecules_that_went_through timed
out after 300 s). The race is rare; what is checked here is the mechanism: every worker exited by itself,
with status 0 (the nineteenth sweep: a ProcessPoolExecutor, ended by its end-of-work message
in every path, tests/test_bench_pool_nineteenth.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import deepmolm_plugin

SCRIPTS = Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts"

# bench_molecules in a child Python (its pool forks; a fork of a pytest worker with torch's
# threads running once deadlocked), `process` without RDKit, and the executor's shutdown
# recording how its workers ended
_CHILD = """
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, sys.argv[1])
import bench_molecules

def process(item):
    time.sleep(0.02)
    return {"id": item[0], "error": None, "structure": 0.0, "e3fp": 0.0, "render": 0.0, "crc": len(item[1])}

seen = []
shutdown = ProcessPoolExecutor.shutdown
def recording_shutdown(self, *args, **kwargs):
    workers = list(self._processes.values())
    shutdown(self, *args, **kwargs)
    seen.append([worker.exitcode for worker in workers])
ProcessPoolExecutor.shutdown = recording_shutdown
bench_molecules.process = process
status = bench_molecules.main(sys.argv[3:])
open(sys.argv[2], "w").write(json.dumps(seen))
sys.exit(status)
"""


def test_the_pool_workers_have_ended_by_themselves_when_the_pool_is_torn_down(tmp_path):
    csv = tmp_path / "ids.csv"
    csv.write_text("smiles\n" + "".join(f"{'C' * n}O\n" for n in range(1, 9)))
    seen = tmp_path / "seen.json"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(SCRIPTS), str(seen), "--csv", str(csv), "--workers",
                           "2", "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # was: Pool.terminate found [None, None], both workers still running, and ended them by a signal
    assert json.loads(seen.read_text()) == [[0, 0]]
    result = json.loads((tmp_path / "bench_molecules.json").read_text())
    assert result["identical"] and [run["failed"] for run in result["runs"]] == [0, 0]
