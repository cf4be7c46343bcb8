r"""Start a tf.data service dispatcher or worker, for `fit.py --data_service`.

    python training/data_service.py --role=dispatcher --port=5050
    python training/data_service.py --role=worker --dispatcher=HOST:5050      # on each CPU host
    python training/fit.py --dataset=hmdb51 --data_dir=... --data_service=grpc://HOST:5050

The training input pipeline (reading the sampled frames, decoding, augmenting, batching)
then runs on the workers, and the trainer receives finished batches. A worker needs
TensorFlow and read access to the prepared records at the paths the trainer uses (a shared
file system, or a gs:// path), nothing else: this file imports only TensorFlow and absl, so
it can be copied to a host without keras_attnpool; `python -m
tensorflow.python.data.experimental.service.server_lib` is not needed either, the two
calls below are the whole of it.

Runs until stopped (Ctrl-C). With --work_dir the dispatcher keeps a journal there and
resumes its jobs after a restart (fault-tolerant mode).
"""

import sys

from absl import app, flags

_ROLE = flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "What to start.")
_PORT = flags.DEFINE_integer("port", None, "Port to listen on (dispatcher default 5050; "
                             "worker default: any free port).", lower_bound=0)
_DISPATCHER = flags.DEFINE_string("dispatcher", None,
                                  "The dispatcher's HOST:PORT (or grpc://HOST:PORT), for "
                                  "--role=worker.")
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Dispatcher: a folder for its journal.")
_WORKER_ADDRESS = flags.DEFINE_string(
    "worker_address", None, "Worker: the HOST[:PORT] the dispatcher and trainers reach it "
    "at (default: this host's name; %port% stands for the port).")


def _fail(message: str) -> None:
    print(f"data_service.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse(argv):
    """The command-line convention of keras_attnpool.cli (a bad flag: one line, exit 2;
    --help: exit 0), kept here so that this file needs no keras_attnpool."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(" ".join(str(error).split()) + ". See --helpfull.")
    except SystemExit as done:
        if done.code == 1 and any(arg.split("=")[0] in ("-?", "-h", "--help", "--helpshort",
                                                        "--helpfull") for arg in argv[1:]):
            sys.exit(0)
        raise


def main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --role=worker.")
    if _ROLE.value is None:
        _fail("--role is required: dispatcher or worker.")
    import tensorflow as tf

    service = tf.data.experimental.service
    if _ROLE.value == "dispatcher":
        if _DISPATCHER.value:
            _fail("--dispatcher is for --role=worker.")
        port = 5050 if _PORT.value is None else _PORT.value
        server = service.DispatchServer(service.DispatcherConfig(
            port=port, work_dir=_WORK_DIR.value,
            fault_tolerant_mode=_WORK_DIR.value is not None))
        print(f"dispatcher at {server.target}; workers: --dispatcher={server.target}",
              flush=True)
    else:
        if not _DISPATCHER.value:
            _fail("--dispatcher=HOST:PORT is required for --role=worker.")
        address = _DISPATCHER.value.split("://", 1)[-1]
        options = {"dispatcher_address": address, "port": _PORT.value or 0}
        if _WORKER_ADDRESS.value:
            options["worker_address"] = _WORKER_ADDRESS.value
        server = service.WorkerServer(service.WorkerConfig(**options))
        print(f"worker of {address} started", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
