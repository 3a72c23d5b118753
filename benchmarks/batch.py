"""Benchmark and acceptance check of ``kneemeasure batch`` on a phantom cohort.

Generates a cohort of N studies (default 500): ``--distinct`` phantom series
are rendered with :func:`kneemeasure.phantom.write_series` and cloned into N
study folders with fresh Study/Series/SOP Instance UIDs (rendering 500
phantoms would take longer than measuring them); 5 % of the studies are bad
(garbage ``.dcm``, truncated files, a sagittal series, a blank series). Then it
runs the real CLI in subprocesses and reports:

* studies/second for 1 and W workers on the first ``--small-n`` studies and W
  workers on all N; seconds per study;
* peak RSS (sum over the batch's process tree, and the largest single process),
  sampled from ``/proc`` every 0.1 s, for ``--small-n`` and N studies;
* the ratio of kneemeasure's time per series (in the worker) to the time pydicom
  alone needs to read and decode that whole series, on the phantom cohort
  (small uncompressed series) and, when ../shared/realdata is present, on the
  real 24-slice JPEG 2000 coronal T1;
* a ``kill -9`` halfway through an N-study run, then ``--resume``: the final
  CSV must equal the uninterrupted run's, with each study exactly once;
* exit code 1 and an error row for every bad study.

Usage::

    python benchmarks/batch.py                 # 500 studies (about 15 min on 2 cores)
    python benchmarks/batch.py --n 40 --small-n 20 --workers 2 --keep /tmp/b

Prints a JSON report at the end (and writes it to ``WORKDIR/report.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kneemeasure.batch import default_workers  # noqa: E402

# --------------------------------------------------------------------------- cohort


def _templates(folder: Path, distinct: int) -> list[Path]:
    from kneemeasure.phantom import PhantomSpec, write_series

    out = []
    rng = np.random.default_rng(7)
    for i in range(distinct):
        spec = PhantomSpec(
            rows=128,
            cols=128,
            row_spacing_mm=0.9,
            col_spacing_mm=0.9,
            n_slices=10,
            extrusion_mm=float(rng.uniform(-0.5, 6.0)),
            laterality="R" if i % 2 else "L",
            contrast=("pd", "t1")[i % 2] if i % 3 else "pd",
            seed=100 + i,
            name=f"bench{i}",
        )
        d = folder / f"t{i:03d}"
        write_series(spec, d)
        out.append(d)
    return out


def _clone(template: Path, dest: Path, tag: str, *, blank: bool = False) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    dest.mkdir(parents=True, exist_ok=True)
    study = generate_uid(entropy_srcs=[tag, "study"])
    series = generate_uid(entropy_srcs=[tag, "series"])
    for f in sorted(template.iterdir()):
        ds = pydicom.dcmread(f)
        sop = generate_uid(entropy_srcs=[tag, f.name])
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        if blank:
            ds.PixelData = bytes(len(ds.PixelData))
        ds.save_as(dest / f.name, enforce_file_format=True)


def _sagittal(dest: Path, tag: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    dest.mkdir(parents=True, exist_ok=True)
    study = generate_uid(entropy_srcs=[tag, "study"])
    series = generate_uid(entropy_srcs=[tag, "series"])
    for i in range(4):
        meta = FileMetaDataset()
        sop = generate_uid(entropy_srcs=[tag, str(i)])
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "MR"
        ds.InstanceNumber = i + 1
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [3.0 * i, 0, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 3.0
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 997 * (i + 1)).tobytes()
        ds.save_as(dest / f"sag{i:02d}.dcm", enforce_file_format=True)


def make_cohort(root: Path, n: int, distinct: int, bad_fraction: float = 0.05) -> dict:
    """Write ``n`` studies under ``root/siteX/NNNN``; returns the bad study keys by kind."""
    t0 = time.perf_counter()
    templates = _templates(root.parent / "templates", distinct)
    t_render = time.perf_counter() - t0
    n_bad = int(round(n * bad_fraction))
    bad_every = n // n_bad if n_bad else n + 1
    kinds = ["corrupt", "truncated", "sagittal", "blank"]
    bad: dict[str, str] = {}
    for i in range(n):
        key = f"site{i % 4}/{i:05d}"
        dest = root / key
        if n_bad and i % bad_every == bad_every // 2 and len(bad) < n_bad:
            kind = kinds[len(bad) % len(kinds)]
            bad[key] = kind
            if kind == "corrupt":
                dest.mkdir(parents=True)
                (dest / "IM0001.dcm").write_bytes(os.urandom(4096))
            elif kind == "truncated":
                dest.mkdir(parents=True)
                for f in sorted(templates[0].iterdir())[:3]:
                    (dest / f.name).write_bytes(f.read_bytes()[:1000])
            elif kind == "sagittal":
                _sagittal(dest, key)
            else:
                _clone(templates[i % distinct], dest, key, blank=True)
            continue
        _clone(templates[i % distinct], dest, key)
    return {
        "bad": bad,
        "render_s_per_phantom": t_render / max(1, distinct),
        "generate_s": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- measuring


def _tree_memory_kb(pid: int) -> tuple[int, int, int]:
    """(sum of VmRSS, sum of PSS, largest VmRSS) in kB over ``pid`` and its descendants.

    RSS counts pages shared between the fork server and its workers once per
    process; PSS (``/proc/PID/smaps_rollup``) splits them, so its sum is the
    tree's real footprint.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    rss_sum = pss_sum = rss_max = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                text = fh.read()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
                rss_sum += rss
                rss_max = max(rss_max, rss)
            elif line.startswith("Pss:"):
                pss_sum += int(line.split()[1])
    return rss_sum, pss_sum, rss_max


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_sum_kb = self.peak_pss_kb = self.peak_one_kb = 0
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._halt.is_set():
            total, pss, one = _tree_memory_kb(self.pid)
            self.peak_sum_kb = max(self.peak_sum_kb, total)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.peak_one_kb = max(self.peak_one_kb, one)
            self.samples.append((time.perf_counter() - t0, pss))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(root: Path, out: Path, workers: int, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "kneemeasure.cli", "batch", str(root), "-o", str(out),
           "--workers", str(workers), "--quiet", "--overwrite", *(extra or [])]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = RssSampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.stop()
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "run.json").read_text())
    summ = manifest["outputs"]["summary"]
    secs = [x["seconds"] for x in manifest["inputs"] if "seconds" in x and x["status"] != "skipped"]
    return {
        "workers": workers,
        "studies": summ["studies_found"],
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "studies_per_s": summ["studies_per_s"],
        "s_per_study_worker_median": round(statistics.median(secs), 4) if secs else None,
        "peak_pss_tree_mb": round(sampler.peak_pss_kb / 1024, 1),
        "peak_rss_tree_mb": round(sampler.peak_sum_kb / 1024, 1),
        "peak_rss_one_process_mb": round(sampler.peak_one_kb / 1024, 1),
        "rows_by_status": summ["rows_by_status"],
        "studies_by_status": summ["studies_by_status"],
        "stdout_tail": stdout.decode()[-400:],
        "stderr_tail": stderr.decode()[-400:] if proc.returncode not in (0, 1) else "",
    }


def subset(root: Path, n: int, dest: Path) -> Path:
    """Symlink-free copy-by-hardlink of the first ``n`` studies (same keys)."""
    keys = sorted(str(p.relative_to(root)) for p in root.glob("site*/*"))
    keys = sorted(keys, key=lambda k: k.split("/")[1])[:n]
    for k in keys:
        shutil.copytree(root / k, dest / k, copy_function=os.link)
    return dest


def decode_seconds(series_dir: Path) -> float:
    """pydicom alone: read every file of the series and decode its pixels."""
    import pydicom

    t0 = time.perf_counter()
    for f in sorted(series_dir.iterdir()):
        pydicom.dcmread(f).pixel_array  # noqa: B018
    return time.perf_counter() - t0


REAL_T1 = REPO.parent / "shared" / "realdata" / "osirix_knee" / "T1_coronal"


def clinical_series_ratio(series_dir: Path, repeat: int = 3) -> dict:
    """The same ratio on a clinical-size compressed series (the real 24-slice T1, J2K).

    kneemeasure runs in this process with one worker, as a batch worker does:
    once as batch runs it (slice profile + PNG) and once for the reference
    number only (no profile, no PNG); pydicom reads and decodes every file.
    """
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import MeasureOptions, measure_one

    (series,), _ = discover_series([series_dir])
    out: dict = {"series": str(series_dir), "slices": series.n_slices}
    measure_one(series, MeasureOptions(png=False))  # warm imports
    for name, opts in (("full", MeasureOptions()), ("reference_only",
                       MeasureOptions(profile=False, png=False))):  # fmt: skip
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            rows = measure_one(series, opts)
            if opts.png:
                from kneemeasure.report import render_measurement_png

                with tempfile.TemporaryDirectory() as td:
                    render_measurement_png(rows[0].image, rows[0], Path(td) / "x.png")
            times.append(time.perf_counter() - t0)
        out[f"kneemeasure_{name}_s"] = round(statistics.median(times), 3)
    dec = statistics.median(decode_seconds(series_dir) for _ in range(repeat))
    out["pydicom_decode_s"] = round(dec, 3)
    out["ratio_full"] = round(out["kneemeasure_full_s"] / dec, 2)
    out["ratio_reference_only"] = round(out["kneemeasure_reference_only_s"] / dec, 2)
    return out


def kill_and_resume(root: Path, out: Path, workers: int, reference_csv: Path, n: int) -> dict:
    cmd = [sys.executable, "-m", "kneemeasure.cli", "batch", str(root), "-o", str(out),
           "--workers", str(workers), "--quiet", "--overwrite"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    journal = out / ".kneemeasure-batch" / "done.jsonl"
    while proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= n // 2:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    with open(out / "measurements.csv", newline="") as fh:
        after_kill = list(csv.reader(fh))
    killed_keys = Counter(r[0] for r in after_kill[1:])
    res = subprocess.run(cmd[:-1] + ["--resume"], env=_env(), capture_output=True)
    final = (out / "measurements.csv").read_bytes()
    with open(out / "measurements.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    with open(reference_csv, newline="") as fh:
        ref_rows = list(csv.reader(fh))[1:]
    return {
        "killed_returncode": proc.returncode,
        "studies_in_csv_after_kill": len(killed_keys),
        "resume_exit_code": res.returncode,
        "final_equals_uninterrupted": final == reference_csv.read_bytes(),
        "each_study_once": Counter(r[0] for r in rows) == Counter(r[0] for r in ref_rows),
        "rows": len(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="studies in the cohort")
    ap.add_argument("--small-n", type=int, default=100, help="studies for the 1-vs-W run")
    ap.add_argument("--distinct", type=int, default=20, help="distinct phantoms rendered")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill -9 / resume check")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="kneemeasure-bench-"))
    if work.exists() and args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"n": args.n, "small_n": args.small_n, "workers": args.workers,
                    "cpus": os.cpu_count()}  # fmt: skip
    root = work / "cohort"
    info = make_cohort(root, args.n, args.distinct)
    report["cohort"] = {
        "generate_s": round(info["generate_s"], 1),
        "render_s_per_phantom": round(info["render_s_per_phantom"], 2),
        "bad_studies": len(info["bad"]),
        "bad_kinds": dict(Counter(info["bad"].values())),
    }
    print(f"cohort: {args.n} studies ({len(info['bad'])} bad) in {info['generate_s']:.0f} s",
          flush=True)  # fmt: skip

    small = subset(root, args.small_n, work / "small")
    runs = {}
    for w in sorted({1, args.workers}):
        runs[f"small_w{w}"] = r = run_cli(small, work / f"out_small_w{w}", w)
        print(f"{args.small_n} studies, {w} worker(s): {r['studies_per_s']:.2f} studies/s, "
              f"peak PSS {r['peak_pss_tree_mb']} MB", flush=True)  # fmt: skip
    runs[f"full_w{args.workers}"] = full = run_cli(root, work / "out_full", args.workers)
    print(f"{args.n} studies, {args.workers} workers: {full['studies_per_s']:.2f} studies/s, "
          f"peak PSS {full['peak_pss_tree_mb']} MB", flush=True)  # fmt: skip
    report["runs"] = runs
    w1 = runs["small_w1"]["studies_per_s"]
    wn = runs[f"small_w{args.workers}"]["studies_per_s"]
    report["speedup_workers_vs_1"] = round(wn / w1, 3) if w1 else None
    small_wn = runs[f"small_w{args.workers}"]
    report["pss_growth_small_to_full_mb"] = round(
        full["peak_pss_tree_mb"] - small_wn["peak_pss_tree_mb"], 1
    )
    report["largest_process_growth_small_to_full_mb"] = round(
        full["peak_rss_one_process_mb"] - small_wn["peak_rss_one_process_mb"], 1
    )

    # decode ratio: kneemeasure's seconds per series (1 worker) vs pydicom's read+decode
    manifest = json.loads((work / "out_small_w1" / "run.json").read_text())
    bad = set(info["bad"])
    per = {x["source"]: x["seconds"] for x in manifest["inputs"]
           if x.get("status") in ("ok", "review") and x["source"] not in bad}  # fmt: skip
    sample = sorted(per)[: min(20, len(per))]
    dec = [decode_seconds(small / k) for k in sample]
    km = [per[k] for k in sample]
    report["decode"] = {
        "series": len(sample),
        "kneemeasure_s_per_series_median": round(statistics.median(km), 4),
        "pydicom_decode_s_per_series_median": round(statistics.median(dec), 4),
        "ratio": round(statistics.median(km) / statistics.median(dec), 1),
    }

    if REAL_T1.is_dir():
        report["decode_clinical_series"] = clinical_series_ratio(REAL_T1)

    bad_rows = {}
    with open(work / "out_full" / "measurements.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["source"] in bad:
                bad_rows.setdefault(r["source"], set()).add(r["status"])
    report["bad_studies_with_error_row"] = sum("error" in s for s in bad_rows.values())
    report["full_exit_code"] = full["exit_code"]

    if not args.no_kill:
        report["kill_resume"] = kill_and_resume(
            root, work / "out_kill", args.workers, work / "out_full" / "measurements.csv", args.n
        )
    for r in runs.values():
        r.pop("stdout_tail", None)
    text = json.dumps(report, indent=2)
    (work / "report.json").write_text(text)
    print(text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
