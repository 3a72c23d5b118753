"""Batch: measure a whole cohort of knee studies, locally or on a Dask cluster.

What a study is
---------------
A *study* is a folder under ROOT that **directly** contains DICOM files (at any
depth: ``ROOT/site/patient/visit/``, one study per folder or several series
mixed in one folder). Its *study key* is the folder's POSIX path relative to
ROOT (``"."`` for ROOT itself); the key is written in the ``source`` column of
every row the study produces and is the unit of ``--resume``.

Folders rather than StudyInstanceUID because the key is then known from the
directory walk alone: the parent process reads no header at all (its memory
holds only the list of keys, so it does not grow with series or file counts),
resume is decided before any file is opened, a corrupt file without a readable
UID still belongs to a study, and the key is stable and human readable. A study
whose series sit in sibling folders gives one key per folder; the rows keep the
Study Instance UID for regrouping.

A file counts as DICOM when it has ``DICM`` at byte 128, a DICOM-like extension
(``.dcm``, ``.dicom``, ``.ima``: kept even when corrupt, so it yields an error
row), or starts like a raw (no preamble) group 0002/0008 data set. Other files
(README, PNG, ...) are ignored.

Work distribution
-----------------
Workers (a local process pool by default, or a ``dask.distributed`` cluster
with ``scheduler=``) receive only ``(root, key, outdir, options)``; they list
the folder, read headers (:func:`kneemeasure.io.discover_series`), decode and
measure one series at a time (:func:`kneemeasure.pipeline.measure_one`), write
the PNGs into ``OUTDIR/png/`` themselves and return the serialised CSV rows.
Pixel data therefore lives only inside a worker while a series is measured.

Crash safety (why append + journal)
-----------------------------------
The parent appends each finished study to ``measurements.csv`` and
``slices.csv`` with one ``write`` of complete lines followed by ``fsync``, then
appends the study key to the journal ``OUTDIR/.kneemeasure-batch/done.jsonl``
(again ``fsync``). Appending costs O(rows of the study), where a periodic atomic
rewrite would cost O(cohort) per study. A ``kill -9`` can only tear the very
last write; the journal says which studies are complete: on ``--resume`` rows
of studies that are not in the journal (a torn or half-written last study) are
dropped and both CSVs are rewritten atomically before work continues. So a
killed run leaves a CSV holding every finished study (plus at most one torn
trailing record, which ``--resume`` removes). At the end both CSVs are sorted by
study key with an atomic rewrite (temp file + ``os.replace``), so resumed and
uninterrupted runs give identical files.

Outputs in OUTDIR: ``measurements.csv`` (columns
:data:`kneemeasure.models.CSV_COLUMNS`), ``slices.csv`` (``source`` plus
:data:`kneemeasure.pipeline.SLICE_COLUMNS`), ``png/``, ``batch.log``,
``run.json`` and the journal folder ``.kneemeasure-batch/``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import os
import re
import sys
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from kneemeasure import __version__
from kneemeasure.errors import KneeMeasureError, UsageError
from kneemeasure.models import CSV_COLUMNS, InputError, Measurement
from kneemeasure.pipeline import (
    SLICE_COLUMNS,
    MeasureOptions,
    error_row,
    render_row_png,
    unique_png_name,
)

log = logging.getLogger("kneemeasure.batch")

#: Columns of the batch ``slices.csv``: the study key, then the per-slice columns of ``measure``.
BATCH_SLICE_COLUMNS: tuple[str, ...] = ("source",) + tuple(SLICE_COLUMNS)

STATE_DIR = ".kneemeasure-batch"
JOURNAL = "done.jsonl"
OPTIONS_FILE = "options.json"
CSV_NAME = "measurements.csv"
SLICES_NAME = "slices.csv"
LOG_NAME = "batch.log"
PNG_DIR = "png"

_DICOM_EXT = (".dcm", ".dicom", ".ima")
_VALID_VR = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
    b"OB", b"OD", b"OF", b"OL", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"OV", b"SV", b"UV",
}  # fmt: skip


# --------------------------------------------------------------------------- discovery


def looks_like_dicom(path: str | Path) -> bool:
    """Cheap test (at most 132 bytes read) whether a file should be handed to the DICOM reader.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
        True for ``DICM`` at byte 128 (PS3.10 7.1), a ``.dcm``/``.dicom``/``.ima``
        extension, or a raw data set starting with a group 0002/0008 element.
    """
    name = os.fspath(path)
    if name.lower().endswith(_DICOM_EXT):
        return True
    try:
        with open(name, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    if len(head) >= 8:
        group_le = int.from_bytes(head[0:2], "little")
        group_be = int.from_bytes(head[0:2], "big")
        if group_le in (0x0002, 0x0008) or group_be == 0x0008:
            return head[4:6] in _VALID_VR or int.from_bytes(head[4:8], "little") < 0x10000
    return False


def _dicom_files(folder: Path) -> list[Path]:
    """DICOM-looking files directly inside ``folder``, sorted by name."""
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or entry.name == "DICOMDIR":
                continue
            if entry.is_file() and looks_like_dicom(entry.path):
                out.append(Path(entry.path))
    return sorted(out)


def _has_dicom(folder: str, names: list[str]) -> bool:
    for name in sorted(names):
        if name.startswith(".") or name == "DICOMDIR":
            continue
        full = os.path.join(folder, name)
        if os.path.isfile(full) and looks_like_dicom(full):
            return True
    return False


def iter_studies(root: str | Path, *, exclude: str | Path | None = None) -> Iterator[str]:
    """Walk ``root`` (any nesting) and yield the key of every study folder, sorted.

    Parameters
    ----------
    root : str or Path
        Cohort root folder.
    exclude : str or Path, optional, keyword-only
        A folder not to descend into (the output folder when it lies under ``root``).

    Yields
    ------
    str
        POSIX path of the study folder relative to ``root`` (``"."`` for ``root`` itself).
    """
    root = Path(root).resolve()
    skip = Path(exclude).resolve() if exclude is not None else None
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and (skip is None or Path(folder, d).resolve() != skip)
        )
        if _has_dicom(folder, files):
            yield Path(folder).relative_to(root).as_posix()


# --------------------------------------------------------------------------- worker side


@dataclass
class StudyResult:
    """What a worker returns for one study (plain strings: cheap to pickle).

    Attributes
    ----------
    key : str
        Study key (relative folder path).
    rows : list of dict
        ``measurements.csv`` rows (:data:`CSV_COLUMNS` -> str).
    slice_rows : list of dict
        ``slices.csv`` rows (:data:`BATCH_SLICE_COLUMNS` -> str).
    skipped : list of dict
        Series not measured because a coronal series was found in the same study.
    n_series : int
    seconds : float
        Wall time in the worker.
    """

    key: str
    rows: list[dict[str, str]] = field(default_factory=list)
    slice_rows: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    n_series: int = 0
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``"error"`` if any row failed, else ``"review"`` if any needs review, else ``"ok"``."""
        statuses = {r.get("status", "error") for r in self.rows} or {"error"}
        for s in ("error", "review"):
            if s in statuses:
                return s
        return "ok"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "root"


def png_name(key: str, series_uid: str, side: str, used: set[str]) -> str:
    """Deterministic PNG file name for one row, unique within a study (and across studies).

    The study key's slug is followed by a CRC of the key itself, so ``a b`` and
    ``a_b`` do not collide.
    """
    base = f"{_slug(key)[-60:]}-{zlib.crc32(key.encode()):08x}"
    if series_uid:
        base += f"_{_slug(series_uid)[-24:]}"
    return unique_png_name(base, side, used)


def _relative_text(text: str, root: Path) -> str:
    """Strip the absolute ROOT prefix from messages so outputs do not depend on the mount point."""
    prefix = str(root) + os.sep
    return text.replace(prefix, "")


def _row_dict(m: Measurement) -> dict[str, str]:
    return m.csv_row()


def _slice_dict(key: str, m: Measurement, entry: dict) -> dict[str, str]:
    from kneemeasure.pipeline import _fmt_slice

    row = _fmt_slice({"series_instance_uid": m.series_instance_uid, "side": m.side, **entry})
    return {"source": key, **row}


def _finish_rows(
    key: str,
    rows: list[Measurement],
    outdir: Path,
    options: MeasureOptions,
    used: set[str],
    label: str,
    result: StudyResult,
) -> None:
    """PNG per row (written here, in the worker), then serialise rows; drop the pixels."""
    for m in rows:
        m.source = key
        if options.png and (m.image is not None):
            name = png_name(key, m.series_instance_uid, m.side, used)
            written = render_row_png(m.image, m, outdir / PNG_DIR / name, label)
            m.png = f"{PNG_DIR}/{name}" if written else ""
        m.image = None
        m.landmarks = None
        for entry in m.slice_profile:
            result.slice_rows.append(_slice_dict(key, m, entry))
        m.slice_profile = []
        result.rows.append(_row_dict(m))


def measure_study(
    root: str | Path, key: str, outdir: str | Path, options: MeasureOptions
) -> StudyResult:
    """Measure every knee series of one study folder; never raises for bad input.

    Runs in a worker process. Reads headers, then decodes and measures one
    series at a time; writes the PNGs into ``outdir/png``; returns plain rows.

    Parameters
    ----------
    root : str or Path
        Cohort root.
    key : str
        Study key: folder relative to ``root``.
    outdir : str or Path
        Output folder (PNGs are written to ``outdir/png``).
    options : MeasureOptions

    Returns
    -------
    StudyResult
        At least one row; failures are ``status=error`` rows whose ``source`` is ``key``.
    """
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import is_candidate, measure_one

    t0 = time.perf_counter()
    root, outdir = Path(root).resolve(), Path(outdir)
    result = StudyResult(key=key)
    used: set[str] = set()
    label = key
    try:
        folder = root / key
        files = _dicom_files(folder) if folder.is_dir() else []
        if not files:
            err = InputError(source=key, error=f"{key}: no DICOM files in this study folder")
            _finish_rows(
                key, [error_row(err, options=options)], outdir, options, used, label, result
            )
            return result
        series_list, errors = discover_series(files, spacing_mm=options.spacing_mm)
        for err in errors:
            m = error_row(err, options=options)
            m.error = _relative_text(m.error, root)
            _finish_rows(key, [m], outdir, options, used, label, result)
        if not series_list and not errors:
            err = InputError(source=key, error=f"{key}: no DICOM image series in this folder")
            _finish_rows(
                key, [error_row(err, options=options)], outdir, options, used, label, result
            )
        series_list = sorted(
            series_list, key=lambda s: (s.series_instance_uid, s.plane, s.n_slices)
        )
        candidates = [s for s in series_list if is_candidate(s)]
        result.n_series = len(series_list)
        for s in series_list:
            if candidates and s not in candidates:
                result.skipped.append(
                    {
                        "source": key,
                        "series_instance_uid": s.series_instance_uid,
                        "plane": s.plane,
                        "reason": f"{s.plane} series skipped "
                        "(a coronal series was found in the same study)",
                    }
                )
                continue
            s.source = key
            try:
                rows = measure_one(s, options)
            except KneeMeasureError as exc:  # UsageError from per-series options (e.g. --slice)
                m = error_row(exc, series=s, options=options)
                rows = [m]
            for m in rows:
                m.error = _relative_text(m.error, root)
            _finish_rows(key, rows, outdir, options, used, label, result)
            del rows, s
    except Exception as exc:  # never lose the batch to one study; the row says what happened
        if options.debug:
            raise
        log.debug("internal error on study %s", key, exc_info=True)
        err = InputError(
            source=key,
            error=f"{key}: internal error ({type(exc).__name__}: "
            f"{_relative_text(str(exc), root)[:200]}); rerun this folder with "
            "`kneemeasure --debug measure` for the traceback and report it",
        )
        result.rows = []
        result.slice_rows = []
        result.rows.append(_row_dict(error_row(err, options=options)))
    result.seconds = round(time.perf_counter() - t0, 4)
    return result


def _crash_result(key: str, options: MeasureOptions, cause: str) -> StudyResult:
    err = InputError(
        source=key,
        error=f"{key}: {cause}; measure this folder alone with `kneemeasure measure` "
        "to see the cause",
    )
    m = error_row(err, options=options)
    m.source = key
    return StudyResult(key=key, rows=[m.csv_row()])


# --------------------------------------------------------------------------- journal / CSV


def _csv_text(rows: list[dict[str, str]], columns: tuple[str, ...], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _read_records(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    """Complete records of a CSV we wrote; a torn last record (no final newline) is dropped."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1] if "\n" in text else ""
    out: list[list[str]] = []
    reader = csv.reader(io.StringIO(text))
    try:
        for i, rec in enumerate(reader):
            if i == 0:
                if tuple(rec) != columns:
                    raise UsageError(
                        f"{path}: header differs from this kneemeasure's columns; "
                        "resume into the folder of a batch run by the same version, "
                        "or start a new output folder",
                    )
                continue
            if len(rec) == len(columns):
                out.append(rec)
    except csv.Error:
        pass  # a record cut inside a quoted field: everything before it is kept
    return out


def _write_fsync(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)


class _Store:
    """The batch's files in OUTDIR: append per study, recover on resume, sort at the end."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.csv = outdir / CSV_NAME
        self.slices = outdir / SLICES_NAME
        self.state = outdir / STATE_DIR
        self.journal = self.state / JOURNAL
        self.options_file = self.state / OPTIONS_FILE
        self._fds: dict[str, int] = {}

    def exists(self) -> bool:
        return self.journal.exists() or self.csv.exists()

    def start_fresh(self, options: dict) -> None:
        from kneemeasure.report.csvout import atomic_write_text

        self.state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.csv, _csv_text([], CSV_COLUMNS, True))
        atomic_write_text(self.slices, _csv_text([], BATCH_SLICE_COLUMNS, True))
        atomic_write_text(self.journal, "")
        atomic_write_text(self.options_file, json.dumps(options, indent=1, sort_keys=True))

    def check_options(self, options: dict) -> None:
        if not self.options_file.exists():
            return
        try:
            old = json.loads(self.options_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        diff = sorted(k for k in set(old) | set(options) if old.get(k) != options.get(k))
        if diff:
            what = ", ".join(f"{k} {old.get(k)!r} -> {options.get(k)!r}" for k in diff)
            raise UsageError(
                f"{self.options_file}: --resume with different options ({what}); "
                "rerun with the options of the interrupted run, or without --resume "
                "into a new output folder",
            )

    def recover(self, options: dict) -> set[str]:
        """Keys of complete studies; drops rows of incomplete ones and rewrites the CSVs."""
        from kneemeasure.report.csvout import atomic_write_text

        if not self.exists():
            self.start_fresh(options)
            return set()
        self.check_options(options)
        rows = _read_records(self.csv, CSV_COLUMNS)
        slices = _read_records(self.slices, BATCH_SLICE_COLUMNS)
        if self.journal.exists():
            text = self.journal.read_text(encoding="utf-8")
            done = set()
            for line in text.split("\n")[:-1]:  # the part after the last newline is torn
                try:
                    done.add(json.loads(line))
                except ValueError:
                    continue
        else:  # a CSV without journal (e.g. copied): trust its complete records
            done = {r[0] for r in rows}
        keep = [r for r in rows if r[0] in done]
        keep_s = [r for r in slices if r[0] in done]
        dropped = len(rows) - len(keep)
        if dropped:
            log.info("resume: dropped %d row(s) of unfinished studies", dropped)
        self.state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.csv, _records_text(keep, CSV_COLUMNS))
        atomic_write_text(self.slices, _records_text(keep_s, BATCH_SLICE_COLUMNS))
        atomic_write_text(self.journal, "".join(json.dumps(k) + "\n" for k in sorted(done)))
        if not self.options_file.exists():
            atomic_write_text(self.options_file, json.dumps(options, indent=1, sort_keys=True))
        return done

    def open(self) -> None:
        for name, path in (("slices", self.slices), ("csv", self.csv), ("journal", self.journal)):
            self._fds[name] = os.open(path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def append(self, res: StudyResult) -> None:
        """Slices, rows, then the journal line: each one ``write`` + ``fsync``."""
        if res.slice_rows:
            text = _csv_text(res.slice_rows, BATCH_SLICE_COLUMNS, False)
            _write_fsync(self._fds["slices"], text.encode("utf-8"))
        text = _csv_text(res.rows, CSV_COLUMNS, False)
        _write_fsync(self._fds["csv"], text.encode("utf-8"))
        _write_fsync(self._fds["journal"], (json.dumps(res.key) + "\n").encode("utf-8"))

    def finalize(self) -> list[list[str]]:
        """Sort both CSVs by study key (stable: a study's rows keep their order); atomic."""
        from kneemeasure.report.csvout import atomic_write_text

        rows = _read_records(self.csv, CSV_COLUMNS)
        rows.sort(key=lambda r: r[0])
        atomic_write_text(self.csv, _records_text(rows, CSV_COLUMNS))
        slices = _read_records(self.slices, BATCH_SLICE_COLUMNS)
        slices.sort(key=lambda r: r[0])
        atomic_write_text(self.slices, _records_text(slices, BATCH_SLICE_COLUMNS))
        return rows


def _records_text(records: list[list[str]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(records)
    return buf.getvalue()


# --------------------------------------------------------------------------- executors


_PRELOAD = [
    "kneemeasure.batch",
    "kneemeasure.pipeline",
    "kneemeasure.io",
    "kneemeasure.detect",
    "kneemeasure.report",
]
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """Workers are the parallelism: keep BLAS/OpenMP in each to one thread (env restored)."""
    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # the fork server imports the heavy modules once; every worker forks from it warm
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _run_local(
    root: Path,
    todo: list[str],
    outdir: Path,
    options: MeasureOptions,
    workers: int,
    on_result: Callable[[StudyResult], None],
) -> None:
    """Measure ``todo`` with a process pool; a dead worker costs only its own study.

    When the pool breaks (a worker killed by the OOM killer or a crash in a
    decoder), every study that was in flight is retried *alone*, so a second
    crash pins the culprit, which gets an error row; the others are measured.
    """
    if workers == 0:  # in-process (debugging, tiny cohorts)
        for key in todo:
            on_result(measure_study(root, key, outdir, options))
        return
    pending: deque[str] = deque(todo)
    suspects: deque[str] = deque()
    crashes: Counter[str] = Counter()
    ctx = _mp_context()
    with _one_thread_per_worker():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=200)
    inflight: dict = {}
    n_returned = n_breaks = 0
    try:
        while pending or suspects or inflight:
            if suspects:  # isolate: one suspect at a time, nothing else in flight
                if not inflight:
                    key = suspects.popleft()
                    inflight[pool.submit(measure_study, root, key, outdir, options)] = key
            else:
                while pending and len(inflight) < 2 * workers:
                    key = pending.popleft()
                    inflight[pool.submit(measure_study, root, key, outdir, options)] = key
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                key = inflight.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    broken = True
                    crashes[key] += 1
                    if crashes[key] >= 2:
                        res = _crash_result(
                            key,
                            options,
                            "the worker process died while measuring this study "
                            "(crash or out of memory)",
                        )
                    else:
                        suspects.append(key)
                        continue
                except Exception as exc:  # pickling / transport failure of this task only
                    res = _crash_result(key, options, f"worker failed ({type(exc).__name__})")
                else:
                    n_returned += 1
                on_result(res)
            if broken:
                n_breaks += 1
                if n_returned == 0 and n_breaks >= 2:
                    raise KneeMeasureError(
                        "worker processes die before measuring anything (twice); "
                        "run with --workers 0 (in-process) to see the cause"
                    )
                for key in list(inflight.values()):
                    crashes[key] += 1
                    suspects.append(key)
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                log.warning(
                    "a worker process died; retrying %d study(ies) one at a time", len(suspects)
                )
                with _one_thread_per_worker():
                    pool = ProcessPoolExecutor(
                        max_workers=workers, mp_context=ctx, max_tasks_per_child=200
                    )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_client(scheduler: str, workers: int):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise UsageError(
            "--scheduler/--dask needs dask.distributed, which is not installed; "
            "pip install 'kneemeasure[dask]' or drop the option to use the local process pool"
        ) from exc
    if scheduler in ("local", "dask", ""):
        cluster = LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        return Client(cluster), cluster
    if not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://", scheduler):
        raise UsageError(
            f"--scheduler {scheduler!r}: expected an address like tcp://HOST:PORT "
            "(or use --dask for a local Dask cluster)"
        )
    try:
        return Client(scheduler, timeout="20s"), None
    except (OSError, TimeoutError) as exc:
        raise UsageError(
            f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc}); "
            "check the address and that `dask scheduler` is running"
        ) from exc


def _run_dask(
    root: Path,
    todo: list[str],
    outdir: Path,
    options: MeasureOptions,
    workers: int,
    scheduler: str,
    on_result: Callable[[StudyResult], None],
) -> None:
    """Same work on a ``dask.distributed`` cluster; workers must see ROOT and OUTDIR at the
    same paths (shared file system)."""
    from dask.distributed import as_completed

    client, cluster = _dask_client(scheduler, workers)
    try:
        nthreads = sum(client.nthreads().values()) or max(1, workers)
        pending = deque(todo)
        seq = as_completed()
        keys: dict = {}

        def submit() -> None:
            key = pending.popleft()
            fut = client.submit(
                measure_study,
                str(root),
                key,
                str(outdir),
                options,
                pure=False,
                key=f"kneemeasure-study-{zlib.crc32(key.encode()):08x}-{len(keys)}",
            )
            keys[fut] = key
            seq.add(fut)

        for _ in range(min(len(pending), 2 * nthreads)):
            submit()
        for fut in seq:
            key = keys.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker, lost connection: this study only
                res = _crash_result(key, options, f"the Dask task failed ({type(exc).__name__})")
            fut.release()
            on_result(res)
            if pending:
                submit()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    """Result of :func:`run_batch`.

    Attributes
    ----------
    n_studies : int
        Studies found under ROOT.
    n_resumed : int
        Studies skipped because the CSV already held them (``--resume``).
    n_measured : int
        Studies measured in this run.
    studies_by_status : dict
        Final CSV: studies by worst row status (``ok``/``review``/``error``).
    rows_by_status : dict
        Final CSV: rows by status.
    n_rows : int
    n_extruded : int
        Rows with ``extruded == true`` (MME >= threshold).
    threshold_mm : float
    elapsed_s : float
    studies_per_s : float
        Studies measured in this run / wall time of the measuring phase.
    csv_path, slices_path, manifest_path, log_path : Path
    """

    n_studies: int = 0
    n_resumed: int = 0
    n_measured: int = 0
    studies_by_status: dict[str, int] = field(default_factory=dict)
    rows_by_status: dict[str, int] = field(default_factory=dict)
    n_rows: int = 0
    n_extruded: int = 0
    threshold_mm: float = 3.0
    elapsed_s: float = 0.0
    studies_per_s: float = 0.0
    csv_path: Path | None = None
    slices_path: Path | None = None
    manifest_path: Path | None = None
    log_path: Path | None = None

    @property
    def n_failed(self) -> int:
        """Studies with at least one ``status=error`` row."""
        return self.studies_by_status.get("error", 0)

    @property
    def exit_code(self) -> int:
        """0 when every input was measured (ok or review), 1 when any failed."""
        return 1 if self.n_failed else 0

    def lines(self) -> list[str]:
        """Human-readable summary lines (no patient data)."""
        st = ", ".join(f"{k} {v}" for k, v in sorted(self.studies_by_status.items())) or "none"
        rw = ", ".join(f"{k} {v}" for k, v in sorted(self.rows_by_status.items())) or "none"
        return [
            f"studies: {self.n_studies} found, {self.n_measured} measured now, "
            f"{self.n_resumed} resumed; by status: {st}",
            f"rows: {self.n_rows} ({rw}); MME >= {self.threshold_mm:g} mm: {self.n_extruded}",
            f"time: {self.elapsed_s:.1f} s ({self.studies_per_s:.2f} studies/s)",
            f"wrote {self.csv_path}",
        ]


def default_workers() -> int:
    """Number of usable cores (CPU affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _summarise(rows: list[list[str]], summary: BatchSummary) -> None:
    i_status = CSV_COLUMNS.index("status")
    i_ext = CSV_COLUMNS.index("extruded")
    by_study: dict[str, set[str]] = {}
    for r in rows:
        by_study.setdefault(r[0], set()).add(r[i_status])
    summary.rows_by_status = dict(Counter(r[i_status] for r in rows))
    summary.n_rows = len(rows)
    summary.n_extruded = sum(r[i_ext] == "true" for r in rows)
    worst = Counter()
    for statuses in by_study.values():
        worst["error" if "error" in statuses else "review" if "review" in statuses else "ok"] += 1
    summary.studies_by_status = dict(worst)


def run_batch(
    root: str | Path,
    outdir: str | Path,
    options: MeasureOptions | None = None,
    *,
    workers: int | None = None,
    resume: bool = False,
    scheduler: str | None = None,
    quiet: bool = False,
    overwrite: bool = False,
) -> BatchSummary:
    """Measure every study under ``root``; write ``measurements.csv`` etc. to ``outdir``.

    Parameters
    ----------
    root : str or Path
        Cohort folder (any nesting; see the module docstring for what a study is).
    outdir : str or Path
        Output folder (created).
    options : MeasureOptions, optional
        The same options as ``kneemeasure measure``.
    workers : int, optional, keyword-only
        Worker processes (default: usable cores). ``0`` measures in this process.
        With ``scheduler="local"`` the number of Dask workers.
    resume : bool, keyword-only
        Skip studies already complete in ``outdir`` (after dropping a torn tail).
    scheduler : str, optional, keyword-only
        ``"tcp://HOST:PORT"`` of a running Dask scheduler, or ``"local"`` for a
        Dask ``LocalCluster`` on loopback; ``None`` (default) = local process pool.
    quiet : bool, keyword-only
        No progress bar.
    overwrite : bool, keyword-only
        Start afresh even when ``outdir`` holds an earlier batch.

    Returns
    -------
    BatchSummary

    Raises
    ------
    UsageError
        Bad root/outdir/options, an earlier batch in ``outdir`` without
        ``resume``/``overwrite``, or a Dask scheduler that cannot be reached.
    """
    from kneemeasure.report import write_manifest

    options = options or MeasureOptions()
    options.validate()
    root = Path(root).resolve()
    outdir = Path(outdir).resolve()
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder; give the cohort root folder")
    if workers is None:
        workers = default_workers()
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, not {workers}")
    outdir.mkdir(parents=True, exist_ok=True)
    store = _Store(outdir)
    opts = {k: v for k, v in asdict(options).items() if k != "debug"}
    opts = json.loads(json.dumps(opts, default=str))
    if store.exists() and not resume and not overwrite:
        raise UsageError(
            f"{outdir}: holds an earlier batch ({CSV_NAME}); pass --resume to continue it, "
            "--overwrite to start again, or choose another output folder"
        )

    handler = logging.FileHandler(outdir / LOG_NAME, mode="a" if resume else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    pkg_log = logging.getLogger("kneemeasure")
    old_level = pkg_log.level
    pkg_log.addHandler(handler)
    if pkg_log.getEffectiveLevel() > logging.INFO:
        pkg_log.setLevel(logging.INFO)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    summary = BatchSummary(threshold_mm=options.threshold_mm, log_path=outdir / LOG_NAME)
    inputs: list[dict] = []
    skipped: list[dict] = []
    try:
        log.info(
            "batch start: kneemeasure %s, root %s, workers %d, scheduler %s, resume %s",
            __version__,
            root,
            workers,
            scheduler or "local processes",
            resume,
        )
        done = store.recover(opts) if resume else set()
        if not resume:
            store.start_fresh(opts)
        exclude = outdir if outdir.is_relative_to(root) else None
        keys = list(iter_studies(root, exclude=exclude))
        todo = [k for k in keys if k not in done]
        summary.n_studies = len(keys)
        summary.n_resumed = len(keys) - len(todo)
        log.info(
            "found %d studies; %d already done; %d to measure",
            len(keys),
            summary.n_resumed,
            len(todo),
        )
        if not keys:
            log.warning("no DICOM files found under %s", root)

        bar = _progress_bar(len(todo), quiet)
        counts: Counter[str] = Counter()

        def on_result(res: StudyResult) -> None:
            store.append(res)
            status = res.status
            counts[status] += 1
            summary.n_measured += 1
            errs = "; ".join(r["error"] for r in res.rows if r.get("status") == "error")
            if status == "error":
                log.warning("study %s: error: %s", res.key, errs[:500])
            else:
                log.info(
                    "study %s: %s, %d row(s), %.2f s", res.key, status, len(res.rows), res.seconds
                )
            inputs.append(
                {
                    "source": res.key,
                    "status": status,
                    "series": res.n_series,
                    "rows": len(res.rows),
                    "seconds": res.seconds,
                    **({"error": errs[:500]} if errs else {}),
                }
            )
            skipped.extend(res.skipped)
            if bar is not None:
                bar.set_postfix(
                    ok=counts["ok"] + counts["review"],
                    failed=counts["error"],
                    left=len(todo) - summary.n_measured,
                    refresh=False,
                )
                bar.update(1)

        store.open()
        t_measure = time.perf_counter()
        try:
            if todo:
                if scheduler:
                    _run_dask(root, todo, outdir, options, workers, scheduler, on_result)
                else:
                    _run_local(root, todo, outdir, options, workers, on_result)
        finally:
            store.close()
            if bar is not None:
                bar.close()
        measure_s = time.perf_counter() - t_measure
        rows = store.finalize()
        _summarise(rows, summary)
        summary.elapsed_s = time.perf_counter() - t0
        summary.studies_per_s = summary.n_measured / measure_s if measure_s > 0 else 0.0
        summary.csv_path = store.csv
        summary.slices_path = store.slices
        outputs = {
            "measurements_csv": CSV_NAME,
            "slices_csv": SLICES_NAME,
            "png_dir": PNG_DIR if options.png else None,
            "log": LOG_NAME,
            "summary": {
                "studies_found": summary.n_studies,
                "studies_resumed": summary.n_resumed,
                "studies_measured": summary.n_measured,
                "studies_by_status": summary.studies_by_status,
                "rows_by_status": summary.rows_by_status,
                "rows": summary.n_rows,
                f"extruded_ge_{options.threshold_mm:g}mm": summary.n_extruded,
                "studies_per_s": round(summary.studies_per_s, 4),
            },
        }
        summary.manifest_path = write_manifest(
            outdir / "run.json",
            command="batch",
            options={
                **opts,
                "workers": workers,
                "scheduler": scheduler,
                "resume": resume,
                "root": str(root),
            },
            inputs=inputs + [{**s, "status": "skipped"} for s in skipped],
            outputs=outputs,
            started=started,
            elapsed_s=summary.elapsed_s,
        )
        for line in summary.lines():
            log.info("%s", line)
        return summary
    except KeyboardInterrupt:
        log.warning("interrupted; finished studies are in %s; rerun with --resume", store.csv)
        raise
    finally:
        pkg_log.removeHandler(handler)
        pkg_log.setLevel(old_level)
        handler.close()


def _progress_bar(total: int, quiet: bool):
    if quiet or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="study",
        desc="kneemeasure batch",
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
