"""First-call time of torch.compile(opt.step) (Inductor) on 100 tensors (100 x 10k), torch.optim.AdamW
vs fo.adapters.AdamW, tensor lr; each in a fresh process with a fresh Inductor cache; then steady step."""

import json
import os
import subprocess
import sys
import tempfile
import time

if len(sys.argv) > 1 and sys.argv[1] == "child":
    lib = sys.argv[2]
    import torch

    import functional_optim as fo

    torch.set_num_threads(1)
    ps = [torch.nn.Parameter(torch.randn(10_000)) for _ in range(100)]
    mod = torch.optim if lib == "torch" else fo.adapters
    opt = mod.AdamW(ps, lr=torch.tensor(1e-3))
    step = torch.compile(opt.step)
    for p in ps:
        p.grad = torch.randn_like(p)
    t = time.perf_counter()
    step()
    first = time.perf_counter() - t
    t = time.perf_counter()
    step()
    second = time.perf_counter() - t
    ts = []
    for _ in range(20):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(
        json.dumps({"lib": lib, "first_s": first, "second_s": second, "steady_ms": 1000 * ts[len(ts) // 2]})
    )
else:
    for lib in ("torch", "fo"):
        with tempfile.TemporaryDirectory() as d:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": d, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(
                [sys.executable, __file__, "child", lib], env=env, capture_output=True, text=True
            )
            print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:])
