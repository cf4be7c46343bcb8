"""Export trained models for TF Serving (versioned SavedModels) and TFLite.

    from keras_attnpool.export import export_saved_model, export_tflite
    path = export_saved_model(model, "savedmodels/digits", class_names)  # .../digits/1
    export_tflite(path, "savedmodels/digits/tflite/1/model_int8.tflite", "int8",
                  representative_data=train_images)

See `serving.py` for the signatures and their outputs, `tflite.py` for the TFLite
metadata, and savedmodels/README.md for serving them.
"""

from keras_attnpool.export.models_config import read_models_config, update_models_config
from keras_attnpool.export.saved_model import (SIGNATURES, VersionExistsError,
                                               existing_versions, export_saved_model,
                                               next_version)
from keras_attnpool.export.tflite import QUANTIZATIONS, export_tflite, load_interpreter, run_tflite
from keras_attnpool.export.workdir import (Workdir, WorkdirError, calibration_images,
                                           export_workdir, load_workdir)

__all__ = ["QUANTIZATIONS", "SIGNATURES", "VersionExistsError", "Workdir", "WorkdirError",
           "calibration_images", "existing_versions", "export_saved_model", "export_tflite",
           "export_workdir", "load_interpreter", "load_workdir", "next_version",
           "read_models_config", "run_tflite", "update_models_config"]
