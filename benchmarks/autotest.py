"""Wall time of the full autotest property set of fcc Cu with a LAMMPS EAM potential, and its split.

    .venv/bin/python benchmarks/autotest.py [--keep DIR]

Runs relaxation, EOS, elastic, vacancy, interstitial, surface, γ-line and phonon (the property set
of examples/autotest_cu, EAM only) through ``Autotest.make/run/post``, timing each.  The
calculator's share is measured by running every task's LAMMPS command again, one after the other,
in the same folders; dpdispatcher's share of the run step is the rest of its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print the wall time per step and phase, then the split: our code / dpdispatcher / LAMMPS."""
    from dpgen_lite.autotest.schema import load_param
    from dpgen_lite.autotest.workflow import STEPS, TASKS_FILE, Autotest

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="run in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="autotest_bench_"))
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "autotest_cu" / "confs", work / "confs")
    param = json.loads((ROOT / "examples" / "autotest_cu" / "param.json").read_text())
    param["interaction"] = param["interaction"][0]  # EAM only
    param.pop("reference")

    t0 = time.perf_counter()
    at = Autotest(load_param(param, work), work, {})
    times = {"load": time.perf_counter() - t0}
    ntasks = 0
    for step in STEPS:
        for phase in ("make", "run", "post"):
            t0 = time.perf_counter()
            getattr(at, phase)(step)
            times[f"{step} {phase}"] = time.perf_counter() - t0
    _, calc, root = at.runs[0]
    command = calc.command(None)
    t_calc = 0.0
    for spec in root.glob(f"confs/*/*/{TASKS_FILE}"):
        for entry in json.loads(spec.read_text())["tasks"]:
            t0 = time.perf_counter()
            subprocess.run(command, shell=True, cwd=spec.parent / entry["task"], check=True)
            t_calc += time.perf_counter() - t0
            ntasks += 1
    total = sum(times.values())
    print(f"{'phase':<22s}{'wall (s)':>10s}")
    for name, t in times.items():
        print(f"{name:<22s}{t:10.2f}")
    print(f"{'total':<22s}{total:10.2f}")
    ours = sum(t for k, t in times.items() if not k.endswith("run"))
    run = sum(t for k, t in times.items() if k.endswith("run"))
    cores = os.cpu_count() or 1
    print(f"\n{ntasks} LAMMPS tasks; LAMMPS alone, serial: {t_calc:.2f} s ({t_calc / ntasks:.3f} s/task)")
    print(f"our code (load, make, post): {ours:.2f} s ({100 * ours / total:.0f} %)")
    print(f"run steps: {run:.2f} s ({100 * run / total:.0f} %), of which LAMMPS ~{t_calc / cores:.2f} s on "
          f"{cores} cores and dpdispatcher ~{max(run - t_calc / cores, 0):.2f} s")
    print(f"folder: {work}")


if __name__ == "__main__":
    main()
