"""`fit.py --data_service`: a tf.data service dispatcher and two workers, started on
127.0.0.1 by `training/data_service.py` in processes that cannot import keras_attnpool, make
the training batches of a few steps."""

import os
import pathlib
import socket
import subprocess
import sys

import pytest

from keras_attnpool.data.synthetic.demo import make_demo_dataset
from tools import bytes_read

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVICE = str(ROOT / "training" / "data_service.py")
FIT = str(ROOT / "training" / "fit.py")
# Runs data_service.py with keras_attnpool made unimportable.
WITHOUT_PACKAGE = ("import runpy, sys; sys.modules['keras_attnpool'] = None; "
                   "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*flags):
    process = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_PACKAGE, SERVICE, *flags], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    line = process.stdout.readline()  # printed once the server runs
    assert line, process.stderr.read()[-2000:]
    return process, line


@pytest.fixture
def cluster():
    """(dispatcher address, worker processes)."""
    port = _free_port()
    processes = []
    try:
        dispatcher, line = _start("--role=dispatcher", f"--port={port}")
        processes.append(dispatcher)
        assert f"127.0.0.1:{port}" in line or f"localhost:{port}" in line, line
        for _ in range(2):
            processes.append(_start("--role=worker", f"--dispatcher=127.0.0.1:{port}",
                                    "--worker_address=127.0.0.1:%port%")[0])
        yield f"grpc://127.0.0.1:{port}", processes[1:]
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc")
def test_fit_trains_on_batches_made_by_the_service_workers(cluster, tmp_path):
    address, workers = cluster
    data = make_demo_dataset(str(tmp_path / "data"), num_classes=3, clips_per_class=5,
                             num_frames=8, test_fraction=0.4)
    before = [bytes_read(w.pid) for w in workers]
    result = subprocess.run(
        [sys.executable, FIT, f"--data_dir={data}", f"--records_dir={tmp_path / 'records'}",
         f"--workdir={tmp_path / 'w'}", "--steps=4", "--batch_size=4", "--test_frames=4",
         "--export=false", "--workers=0", f"--data_service={address}"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Input: tf.data service at {address}" in result.stdout
    assert (tmp_path / "w" / "checkpoints" / "ckpt-4.index").is_file()
    assert '"data_service": "grpc://127.0.0.1:' in (tmp_path / "w" / "config.json").read_text()
    # The workers read the sampled frames from the shards (and are still running: they
    # never needed keras_attnpool).
    read = [bytes_read(w.pid) - b for w, b in zip(workers, before)]
    assert sum(read) > 4 * 4 * 3 * 500, read
    assert all(w.poll() is None for w in workers)


def test_a_bad_address_is_refused_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, FIT, "--data_service=localhost:5050", f"--workdir={tmp_path / 'w'}"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("fit.py: error: --data_service=localhost:5050: give the "
                                     "tf.data service dispatcher as grpc://HOST:PORT "
                                     "(training/data_service.py --role=dispatcher starts one).")
    assert not (tmp_path / "w").exists()
