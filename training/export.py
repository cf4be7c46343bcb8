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

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.cli import fail
from keras_attnpool.workdir import Workdir

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


def _check_paths() -> None:
    workdir, export_dir = _WORKDIR.value, _EXPORT_DIR.value
    if not os.path.isdir(workdir):
        fail(f"--workdir={workdir}: no such directory; pass the folder training wrote.")
    if not os.path.isfile(Workdir(workdir).model_path):
        fail(f"--workdir={workdir}: no {Workdir.MODEL} in it; train first (training/fit.py).")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        fail(f"--export_dir={export_dir} is a file; pass a folder such as savedmodels/NAME.")
    if not os.path.basename(os.path.abspath(export_dir)).strip():
        fail(f"--export_dir={export_dir}: name the model folder, e.g. savedmodels/NAME.")
    version = _VERSION.value
    if version is not None and not _OVERWRITE.value and os.path.exists(
            os.path.join(export_dir, str(version))):
        # Checked here too, before TensorFlow starts, so the answer comes at once.
        fail(f"--version={version}: {os.path.join(export_dir, str(version))} already "
             "exists; pass another --version, leave it out for the next one, or --overwrite.")


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; flags look like --workdir=PATH.")
    _check_paths()
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines about saving drown the result
    with cli.quiet_native_logs():
        from keras_attnpool.export import VersionExistsError, WorkdirError, export_workdir

    try:
        result = export_workdir(_WORKDIR.value, _EXPORT_DIR.value, version=_VERSION.value,
                                tflite=_TFLITE.value, overwrite=_OVERWRITE.value)
    except VersionExistsError as error:
        fail(f"--version: {error}")
    except WorkdirError as error:
        fail(f"--workdir: {error}")
    except OSError as error:
        fail(f"--export_dir={_EXPORT_DIR.value}: cannot write ({error.strerror or error}).")
    except ValueError as error:
        fail(str(error))

    print(f"SavedModel version {result['version']}: {result['saved_model']}")
    if result["models_config"]:
        print(f"TF Serving config: {result['models_config']}")
    if result["tflite"]:
        print(f"TFLite ({_TFLITE.value}): {result['tflite']}")
    print("Serve it: see savedmodels/README.md (docker run ... tensorflow/serving).")


if __name__ == "__main__":
    cli.run(main)
