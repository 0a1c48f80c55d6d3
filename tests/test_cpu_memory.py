"""keep_freed_memory: a freed tensor's memory stays in the process and is reused."""

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import json, sys, torch
    from deepmolm_plugin import cpu_memory

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 >> 20

    if sys.argv[1] == "keep":
        assert cpu_memory.keep_freed_memory() and cpu_memory.keep_freed_memory()  # glibc; once is enough
    torch.ones(1000)
    before, held, after_free = rss_mib(), [], []
    for _ in range(24):
        t = torch.ones(4 << 20)  # 16 MiB: above glibc's starting mmap threshold, below the 32 MiB cap
        held.append(rss_mib() - before)
        del t
        after_free.append(rss_mib() - before)
    print(json.dumps([held, after_free]))
""")


def _probe(mode: str):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={"THP_MEM_ALLOC_ENABLE": "0", "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout)  # [RSS MiB above the start with the tensor held, after its free] per cycle


def test_freed_memory_stays_in_the_process_and_is_reused():
    held, after_free = _probe("default")
    assert held[0] >= 15 and after_free[0] <= 2  # glibc's default: the first 16 MiB go back to the kernel
    held, after_free = _probe("keep")
    assert held[0] >= 15 and min(after_free) >= 15  # kept in the heap after every free...
    # ...and reused: once the heap holds a few freed blocks (glibc 2.36 settles at 8 here,
    # after 8 to 10 cycles: small allocations between the big ones keep them from
    # merging), later tensors of the same size take no new memory
    assert after_free[-4:] == [after_free[-1]] * 4 and after_free[-1] <= 10 * 16
