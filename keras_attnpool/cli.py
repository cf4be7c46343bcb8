"""What every command-line tool (training/, savedmodels/, benchmarks/) shares: absl flags,
one-line errors, exit codes and quiet start-up.

    from keras_attnpool import cli
    _STEPS = flags.DEFINE_integer("steps", 10, "...")
    def main(argv): ...  cli.fail("--steps=0: must be >= 1.")
    if __name__ == "__main__":
        cli.run(main)

Bad flags and paths end the program with exit code 2 and one line on stderr naming the flag
or file and what to do; so does a write that ran out of space (`files.DiskFullError`).
TensorFlow's C++ runtime prints start-up lines (oneDNN, CUDA probing) straight to file
descriptor 2 before TF_CPP_MIN_LOG_LEVEL applies;
`quiet_native_logs` hides them while TensorFlow loads, so that the tools' own messages stand
alone. Set KERAS_ATTNPOOL_VERBOSE=1 to see them.
"""

import atexit
import contextlib
import os
import re
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_saved_stderr = None


def _print_error(message: str) -> None:
    """Prints `<program>: error: <message>` (its first line) on stderr. While libjpeg's
    warnings are counted, the line goes straight to the real stderr, and the pipeline
    threads still decoding keep writing into the counter."""
    restore_stderr()
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    line = f"{os.path.basename(sys.argv[0])}: error: {first_line}\n"
    if _pump is None:
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    # Through the pump, after what came before it; it says when the line is out.
    sys.stderr.flush()
    os.write(2, _SAY + line.encode("utf-8", errors="replace"))
    _pump[2].wait(timeout=10)


def fail(message: str, code: int = 2) -> None:
    """Prints `<program>: error: <message>` (its first line) and exits with `code`."""
    _print_error(message)
    sys.exit(code)


def fail_on_input_error(error: BaseException, records_dir: str | None = None) -> None:
    """Ends the program with one line (exit 2) when `error` came from reading the prepared
    records (`errors.input_error_message`, which looks in `records_dir` for the damaged
    file); re-raises any other error.

    The exit skips the interpreter's shutdown: the failed pipeline's other reads may still
    be running, and nothing of them is wanted (an exit that deleted their iterator while
    they waited for the GIL once hung; the pipelines now run no Python).
    """
    from keras_attnpool.data.input.errors import input_error_message

    message = input_error_message(error, records_dir)
    if message is None:
        raise error
    _print_error(message)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)


_HELP_FLAGS = ("-?", "-h", "--help", "--helpshort", "--helpfull", "--helpxml")


def parse_flags(argv):
    """absl's flag parsing, with a bad flag answered by one line and exit code 2, and
    --help answered with exit code 0 (absl's own exits 1)."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(" ".join(str(error).split()) + ". See --helpfull.")
    except SystemExit as done:
        if done.code == 1 and any(arg.split("=")[0] in _HELP_FLAGS for arg in argv[1:]):
            sys.exit(0)
        raise


def silence_native_logs() -> None:
    """Sends file descriptor 2 to /dev/null until `restore_stderr()` (or `fail`)."""
    global _saved_stderr
    if _saved_stderr is not None or os.environ.get("KERAS_ATTNPOOL_VERBOSE"):
        return
    sys.stderr.flush()
    _saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def restore_stderr() -> None:
    global _saved_stderr
    if _saved_stderr is None:
        return
    sys.stderr.flush()
    os.dup2(_saved_stderr, 2)
    os.close(_saved_stderr)
    _saved_stderr = None


# (thread, the real stderr's fd, an Event set once the error line is out) while libjpeg's
# warnings are counted.
_pump = None


def _end_pump() -> None:
    """File descriptor 2 back to the real stderr, once every line before it went there."""
    global _pump
    if _pump is None:
        return
    restore_stderr()
    thread, real, said = _pump
    _pump = None
    sys.stderr.flush()
    if said.is_set():  # the tool's error line is out; nothing may follow it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    else:
        os.dup2(real, 2)  # the pipe's last writer closes: the pump reads to its end
    thread.join(timeout=10)  # the pump writes to `real` until the pipe's end
    os.close(real)


# libjpeg's warning for a JPEG that decodes with damaged data, printed by the decoder itself.
_LIBJPEG_WARNING = re.compile(rb"^Corrupt JPEG data: ")
_SAY = b"\0keras_attnpool: error line\0"  # marks `fail`'s line for the pump


@contextlib.contextmanager
def libjpeg_warnings_counted():
    """Inside the block, libjpeg's warnings (one line per damaged frame, which the JPEG
    decoder prints itself) are counted instead of printed; every other line on file
    descriptor 2 goes through as it comes. After the block one line says how many there
    were; a tool that fails inside it prints only its own line (`fail`), also when the
    failed pipeline's threads go on decoding."""
    global _pump
    if _pump is not None or os.environ.get("KERAS_ATTNPOOL_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    damaged, said = [], threading.Event()

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if said.is_set():
                    continue  # the tool said its error line: nothing may follow it
                if line.startswith(_SAY):
                    try:
                        os.write(real, line[len(_SAY):])
                    finally:
                        said.set()
                elif _LIBJPEG_WARNING.match(line):
                    damaged.append(line)
                else:
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="stderr", daemon=True)
    thread.start()
    _pump = (thread, real, said)
    # After a failure the pipeline's threads may still print: the pump stays until the
    # tool has said its line (`fail`), or until exit, after any traceback went through.
    atexit.register(_end_pump)
    yield
    _end_pump()
    if damaged:
        print(f"{os.path.basename(sys.argv[0])}: warning: {len(damaged)} JPEG frames held "
              f"damaged data and were decoded as far as they could be (libjpeg: "
              f"{damaged[0].decode(errors='replace').strip()})", file=sys.stderr)


@contextlib.contextmanager
def quiet_native_logs():
    """Silences file descriptor 2 inside the block; Python exceptions still propagate and
    are printed after it."""
    silence_native_logs()
    try:
        yield
    finally:
        restore_stderr()


def run(main) -> None:
    """`absl.app.run(main)` with one-line flag errors, and with the runtime's start-up lines
    (absl's start initialises TensorFlow's runtime) kept off stderr."""
    from absl import app

    def quiet_main(argv):
        restore_stderr()
        try:
            return main(argv)
        except Exception as error:  # a write that ran out of space, wherever it was
            from keras_attnpool import files

            if isinstance(error, files.DiskFullError):
                fail(error)
            reason = files.out_of_space_reason(error)
            if reason is None:
                raise
            paths = re.findall(r"(?:^|\s)(/[^\s;:]+)", str(error))
            fail(files.disk_full(paths[0] if paths else "a file", reason, cleaned=False))

    silence_native_logs()
    app.run(quiet_main, flags_parser=parse_flags)
