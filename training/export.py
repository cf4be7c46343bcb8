r"""Export a training workdir for TF Serving (and optionally TFLite).

    python training/export.py --workdir=workdir/demo --export_dir=savedmodels/digits
    python training/export.py --workdir=W --export_dir=savedmodels/NAME --version=3 \
        --tflite=int8 --overwrite

Writes `savedmodels/NAME/<version>/` (SavedModel + assets/labels.txt; atomic: written beside
it, then renamed), adds NAME to `savedmodels/models.config`, and with --tflite writes
`savedmodels/NAME/tflite/<version>/model_<kind>.tflite` with `model_<kind>.json` (metadata)
and `labels.txt`. int8 calibrates on the first frames of the workdir's prepared train records
(config.json's records_dir). Takes seconds for the demo model; see savedmodels/README.md to
serve the result.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (model.keras, labels.txt, "
                               "config.json).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "TF Serving model base path, e.g. "
                                  "savedmodels/NAME; versions go in numbered folders.")
_VERSION = flags.DEFINE_integer("version", None, "Integer version; default: the next free one.",
                                lower_bound=1)
_TFLITE = flags.DEFINE_enum("tflite", "none", ["none", "float", "dynamic", "int8"],
                            "Also write a TFLite model: float32, dynamic-range or int8.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.mark_flags_as_required(["workdir", "export_dir"])

_NAME = "export.py"


def _fail(message: str) -> None:
    print(f"{_NAME}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    """absl's parser, but a bad flag is one line on stderr and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(" ".join(str(error).split()) + " (see --helpshort)")


def _check_paths() -> None:
    workdir, export_dir = _WORKDIR.value, _EXPORT_DIR.value
    if not os.path.isdir(workdir):
        _fail(f"--workdir={workdir}: no such directory; pass the folder training wrote.")
    model_path = os.path.join(workdir, "model.keras")
    if not os.path.isfile(model_path):
        _fail(f"--workdir={workdir}: no model.keras in it; train first (training/fit.py).")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        _fail(f"--export_dir={export_dir} is a file; pass a folder such as savedmodels/NAME.")
    if not os.path.basename(os.path.abspath(export_dir)).strip():
        _fail(f"--export_dir={export_dir}: name the model folder, e.g. savedmodels/NAME.")
    version = _VERSION.value
    if version is not None and not _OVERWRITE.value and os.path.exists(
            os.path.join(export_dir, str(version))):
        # Checked here too, before TensorFlow starts, so the answer comes at once.
        _fail(f"--version={version}: {os.path.join(export_dir, str(version))} already "
              "exists; pass another --version, leave it out for the next one, or --overwrite.")


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --workdir=PATH.")
    _check_paths()
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines about saving drown the result

    from keras_attnpool.export import VersionExistsError, WorkdirError, export_workdir

    try:
        result = export_workdir(_WORKDIR.value, _EXPORT_DIR.value, version=_VERSION.value,
                                tflite=_TFLITE.value, overwrite=_OVERWRITE.value)
    except VersionExistsError as error:
        _fail(f"--version: {error}")
    except WorkdirError as error:
        _fail(f"--workdir: {error}")
    except OSError as error:
        _fail(f"--export_dir={_EXPORT_DIR.value}: cannot write ({error.strerror or error}).")
    except ValueError as error:
        _fail(str(error))

    print(f"SavedModel version {result['version']}: {result['saved_model']}")
    if result["models_config"]:
        print(f"TF Serving config: {result['models_config']}")
    if result["tflite"]:
        print(f"TFLite ({_TFLITE.value}): {result['tflite']}")
    print("Serve it: see savedmodels/README.md (docker run ... tensorflow/serving).")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
