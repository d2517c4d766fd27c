"""Atomic writes: a process killed at any moment leaves the old file or the complete new one.

Model files (``storage.save``), result rows (``wsjax.io.append_line``), checkpoints (Orbax)
and the pipeline cache are each written by a process that is killed with SIGKILL at random
moments; every state left behind must read back completely.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from wsjax import io, storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = 20


def model(i: int) -> dict:
    """Version ``i`` of the model a writer saves (about 260 KB, every value tells ``i``)."""
    return {"Dense_0": {"kernel": np.full((256, 250), i, np.float32),
                        "bias": np.arange(250, dtype=np.float32) + i}}


# A fork server: it imports wsjax once (never starting JAX's runtime, so forking is safe),
# then forks a writer KILLS times, kills each with SIGKILL after a random delay and keeps a
# snapshot of the files as the killed writer left them.
_KILLER = """
import json, os, random, shutil, signal, sys, time, warnings
import numpy as np
sys.path.insert(0, {tests!r})
from test_atomic_writes import model
from wsjax import io, storage

folder, kills = {folder!r}, {kills}
path, rows = os.path.join(folder, "model.wsjax"), os.path.join(folder, "rows.jsonl")
rng = random.Random(0)
for k in range(kills):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = io.read_lines(rows)
    start = done[-1]["saved"] + 1 if done else 0
    pid = os.fork()
    if pid == 0:  # the writer: save version i, then record it as a row
        i = start
        while True:
            storage.save(path, model(i))
            io.append_line(rows, {{"saved": i, "pad": "x" * (i % 97)}})
            i += 1
    time.sleep(rng.uniform(0.005, 0.25))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for name in ("model.wsjax", "rows.jsonl"):
        if os.path.exists(os.path.join(folder, name)):
            shutil.copyfile(os.path.join(folder, name), os.path.join(folder, f"{{k:02d}}-{{name}}"))
print(json.dumps({{"kills": kills}}))
"""


def test_a_writer_killed_at_random_moments_leaves_complete_files(tmp_path):
    start = time.perf_counter()
    script = _KILLER.format(tests=os.path.join(ROOT, "tests"), folder=str(tmp_path), kills=KILLS)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"kills": KILLS}
    versions, torn, ahead = [], 0, 0
    for k in range(KILLS):
        rows_file = tmp_path / f"{k:02d}-rows.jsonl"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = io.read_lines(rows_file)
        raw = rows_file.read_bytes() if rows_file.exists() else b""
        middle = raw.split(b"\n")[:-1]  # every line that ends in a newline is complete JSON
        assert all(json.loads(line) is not None for line in middle if line.strip())
        assert len(caught) <= 1 and all("torn last line" in str(w.message) for w in caught)
        torn += len(caught)
        saved = [r["saved"] for r in rows]
        assert saved == list(range(len(saved))), "rows are consecutive, none lost or doubled"
        model_file = tmp_path / f"{k:02d}-model.wsjax"
        if not model_file.exists():
            assert not saved
            versions.append(None)
            continue
        loaded = storage.load(model_file)  # complete: the checksum and every layer are intact
        i = int(loaded["Dense_0"]["kernel"][0, 0])
        expected = model(i)
        assert all(np.array_equal(loaded["Dense_0"][key], expected["Dense_0"][key])
                   for key in expected["Dense_0"])
        last = saved[-1] if saved else -1
        assert i in (last, last + 1), "the model is the last recorded one or the one after it"
        ahead += i == last + 1
        versions.append(i)
    assert versions[-1] is not None and versions[-1] >= KILLS // 2, versions  # writers got far
    assert len(set(versions)) > KILLS // 2  # killed at many different moments
    # Only the target names exist besides leftovers of writes that a kill interrupted.
    names = {os.path.basename(p) for p in glob.glob(str(tmp_path / "*"))}
    names |= {os.path.basename(p) for p in glob.glob(str(tmp_path / ".*"))}
    leftovers = {n for n in names if n.startswith(".model.wsjax.") and n.endswith(".tmp")}
    assert names - leftovers == {"model.wsjax", "rows.jsonl"} | {
        f"{k:02d}-{n}" for k in range(KILLS) for n in ("model.wsjax", "rows.jsonl")
        if (tmp_path / f"{k:02d}-{n}").exists()}
    print(f"\n{KILLS} kills: versions {versions}, {ahead} killed between a save and its row, "
          f"{torn} torn row(s), {len(leftovers)} killed mid-save (stale temp files), "
          f"{time.perf_counter() - start:.1f} s")
    assert time.perf_counter() - start < 30


def test_atomic_write_replaces_whole_files_and_names_the_users_path(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    io.atomic_write(target, b"old")
    os.chmod(target, 0o600)
    io.atomic_write(str(target), b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.stat(target).st_mode & 0o777 == 0o600  # the old file's permissions kept
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]

    def crash(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk on fire"):
        io.atomic_write(target, b"never")
    monkeypatch.undo()
    assert target.read_bytes() == b"new contents"  # the old file, untouched
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]  # and no temp file left
    missing = tmp_path / "no" / "such" / "folder" / "m.wsjax"
    with pytest.raises(FileNotFoundError, match=r"m\.wsjax.*folder .*does not exist"):
        io.atomic_write(missing, b"x")
    with pytest.raises(FileNotFoundError) as e:
        storage.save(missing, model(0))
    assert str(missing) in str(e.value) and ".tmp" not in str(e.value)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        io.atomic_write(tmp_path, b"x")
    report = storage.save(tmp_path / "m.wsjax", model(3))
    assert report.file_bytes == os.path.getsize(tmp_path / "m.wsjax")
    assert os.stat(tmp_path / "m.wsjax").st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["f.bin", "m.wsjax"]


def test_append_line_and_read_lines_skip_a_torn_line(tmp_path):
    rows = tmp_path / "rows.jsonl"
    assert io.read_lines(rows) == []
    io.append_line(rows, {"a": 1})
    io.append_line(rows, '{"b": 2}')
    assert io.read_lines(rows) == [{"a": 1}, {"b": 2}]
    with open(rows, "ab") as f:  # what a writer killed mid-line would leave
        f.write(b'{"c": 3, "d"')
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert io.read_lines(rows) == [{"a": 1}, {"b": 2}]
    with open(rows, "ab") as f:  # a complete line without its newline is torn too
        f.write(b'}')
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert io.read_lines(rows) == [{"a": 1}, {"b": 2}]
    io.append_line(rows, {"e": 5})  # starts on a line of its own
    with pytest.warns(RuntimeWarning, match=r"line\(s\) \[3\]"):
        assert io.read_lines(rows) == [{"a": 1}, {"b": 2}, {"e": 5}]
    assert rows.read_bytes().endswith(b'\n{"e":5}\n')
    with pytest.raises(ValueError, match="newline"):
        io.append_line(rows, "two\nlines")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.append_line(tmp_path / "missing" / "rows.jsonl", {"a": 1})


def test_the_pipeline_cache_is_written_atomically(tmp_path, monkeypatch):
    from wsjax.compress.pipeline import Job

    job = Job(None, None, 0, "python", False, str(tmp_path / "cache"), "00-key", "")
    template = {"w": np.zeros(3, np.float32)}
    tree, info = job.cached(None, template, lambda: ({"w": np.arange(3, dtype=np.float32)}, {"a": 1}))
    assert os.listdir(tmp_path / "cache") == ["00-key.msgpack"]
    again = job.cached(None, template, lambda: pytest.fail("the cache was not used"))
    assert np.array_equal(again[0]["w"], tree["w"]) and again[1] == info == {"a": 1}

    def crash(src, dst):
        raise KeyboardInterrupt  # killed between writing and renaming

    other = Job(None, None, 0, "python", False, str(tmp_path / "cache"), "01-key", "")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        other.cached(None, template, lambda: ({"w": np.ones(3, np.float32)}, {}))
    monkeypatch.undo()
    assert os.listdir(tmp_path / "cache") == ["00-key.msgpack"]  # nothing torn, no temp file


_TRAINER = """
import sys, time
import jax.numpy as jnp
import optax
from wsjax.train import checkpoint
mgr = checkpoint.manager({folder!r})
theta = {{"w": jnp.zeros((64, 64))}}
opt = optax.adam(1e-3).init(theta)
found = checkpoint.restore_latest(mgr, theta, opt)
epoch, history = (found[2], found[3]) if found else (0, [])
while True:
    epoch += 1
    theta = {{"w": jnp.full((64, 64), float(epoch))}}
    history.append({{"epoch": epoch}})
    checkpoint.save(mgr, epoch, theta, opt, history)
    mgr.wait_until_finished()
    print("saved", epoch, flush=True)
"""


def test_checkpoints_survive_a_killed_trainer(tmp_path):
    """Orbax's checkpoints are atomic (a temporary folder renamed when complete): a trainer
    killed mid-save resumes from its last complete checkpoint, the leftovers cleaned up."""
    import jax.numpy as jnp
    import optax

    from wsjax.train import checkpoint

    folder = str(tmp_path / "ckpt")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    last_printed = 0
    for delay in (0.0, 0.2):  # killed at once (mid-save), then a few saves later
        proc = subprocess.Popen([sys.executable, "-c", _TRAINER.format(folder=folder)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=env)
        try:
            line = proc.stdout.readline()  # the first save of this run is complete
            assert line.startswith("saved"), line
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        printed = [int(x.split()[1]) for x in [line] + proc.stdout.read().splitlines()
                   if x.startswith("saved")]
        assert printed[0] == last_printed + 1  # it resumed from the last one it reported
        last_printed = printed[-1]
        theta = {"w": jnp.zeros((64, 64))}
        mgr = checkpoint.manager(folder)  # removes a killed save's temporary folder (soon)
        found = checkpoint.restore_latest(mgr, theta, optax.adam(1e-3).init(theta))
        deadline = time.monotonic() + 20
        while not all(n.isdigit() for n in os.listdir(folder)) and time.monotonic() < deadline:
            time.sleep(0.05)
        mgr.close()
        assert found is not None
        theta, _, epoch, history = found
        assert epoch in (last_printed, last_printed + 1)  # finished ones are all there
        last_printed = epoch
        assert (theta["w"] == epoch).all()
        assert history == [{"epoch": e} for e in range(1, epoch + 1)]
        assert all(name.isdigit() for name in os.listdir(folder)), os.listdir(folder)


def test_a_later_write_removes_the_temp_files_of_killed_writers_only(tmp_path):
    """A writer killed between its temp file and the rename leaves ``.<name>.<pid>.*.tmp``;
    the next write of that name deletes it, but not a live writer's, nor other names'."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    stale = tmp_path / f".m.wsjax.{dead_pid}.abc123.tmp"
    live = tmp_path / f".m.wsjax.{os.getppid()}.def456.tmp"  # our parent: alive
    other = tmp_path / f".n.wsjax.{dead_pid}.ghi789.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    io.atomic_write(tmp_path / "m.wsjax", b"complete")
    assert sorted(os.listdir(tmp_path)) == sorted(["m.wsjax", live.name, other.name])
    assert (tmp_path / "m.wsjax").read_bytes() == b"complete"
