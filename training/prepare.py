r"""Decode a dataset once into sharded TFRecords of JPEG frames, with a manifest.

    python training/prepare.py --dataset=hmdb51 --data_dir=~/data/hmdb51 \
        --output_dir=~/data/hmdb51_split1 --split=1 --workers=8
    python training/prepare.py --dataset=mpii --data_dir=~/data/mpii \
        --output_dir=~/data/mpii_prepared --val_list=rcnn_val.txt

HMDB51 split 1 (5,100 clips, ~0.5 M frames) takes roughly 0.5 M / (frames/s printed at the
end) seconds; rerunning the same command resumes after a crash or Ctrl-C and does nothing
once everything is written. See `keras_attnpool.data.prepare.run` for the record layout, the
manifest and the error policy.

Every sample the dataset's files list is accounted for: the summary prints, per split,
records + skipped when read (missing, empty or unreadable files, duplicates, unknown
classes) + failed to decode = listed, and manifest.json has the same per class
(`accounting`). A class left without records is named on stdout and in the manifest.

video_folder / image_folder: the classes are the folders of --data_dir, so keep
--output_dir out of them (fit.py's default is the sibling DATA_DIR.prepared/split1; an
--output_dir that is --data_dir or lies in a class folder is refused). A folder of prepared
records (with .prepare/ or manifest.json) among the class folders is never read as a class.

Exit codes: 0 done; 1 not ok, everything else is written: more than --max_failure_fraction
of a split's listed samples not prepared (skipped when read or failed to decode, alike),
or a class lost (its listed samples of a split all not prepared, or no sample listed at
all); or, with --on_error=fail, a file failed to decode; 2 bad flags, paths or dataset
files found before anything was converted (with --on_error=fail: the first bad entry), or
an --output_dir that holds records made with other settings (use --overwrite); 130
interrupted (rerun to finish).
"""

import os
import time

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.data.datasets import DATASETS

_DATASET = flags.DEFINE_enum("dataset", None, list(DATASETS), "Dataset to prepare.",
                             case_sensitive=False)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The dataset's folder, as released.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where shards and manifest.json go (folder datasets: outside the "
    "class folders).")
_SPLIT = flags.DEFINE_integer("split", 1, "Official split (hmdb51, ucf101): 1, 2 or 3.")
_WORKERS = flags.DEFINE_integer("workers", None, "Worker processes (default: CPU cores; "
                                "0: convert in this process).", lower_bound=0)
_ON_ERROR = flags.DEFINE_enum("on_error", "skip", ["skip", "fail"],
                              "skip: list bad files in the manifest; fail: stop at the first.")
_SHORT_SIDE = flags.DEFINE_integer("short_side", None, "Stored short side in pixels, never "
                                   "upscaled (default 256 videos, 480 images).", lower_bound=1)
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of stored frames.",
                                     lower_bound=1, upper_bound=100)
_SHARD_SIZE = flags.DEFINE_integer("shard_size", None, "Samples per shard (default 64 "
                                   "videos, 1024 images).", lower_bound=1)
_FRAME_STRIDE = flags.DEFINE_integer("frame_stride", 1, "Keep every k-th frame.",
                                     lower_bound=1)
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "At most this many frames per video.",
                                   lower_bound=1)
_MAX_FAILURE_FRACTION = flags.DEFINE_float(
    "max_failure_fraction", 0.05, "Exit 1 when more than this fraction of a split's listed "
    "samples is not prepared (skipped or failed).",
    lower_bound=0.0, upper_bound=1.0)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete what a prepare wrote in "
                               "--output_dir and start again (needed after changing settings).")

# Reader options, passed through when given (each reader takes some of them).
_READER_FILES = {name: flags.DEFINE_string(name, None, help_text) for name, help_text in [
    ("val_list", "mpii: text file of val image names, one per line."),
    ("annotation_file", "mpii, hico: the .mat file, if not where the release puts it."),
    ("split_file", "video_folder, image_folder: lines '<class>/<file> <train|val|test>'.")]}
_READER_DIRS = {name: flags.DEFINE_string(name, None, help_text) for name, help_text in [
    ("keypoints_dir", "OpenPose --write_json output for the videos or images."),
    ("splits_dir", "hmdb51, ucf101: the split files' folder, if not the official place."),
    ("videos_dir", "hmdb51: the class folders' parent, if not --data_dir.")]}
_READER_OTHER = {
    "val_fraction": flags.DEFINE_float("val_fraction", None, "mpii: seeded val fraction."),
    "test_fraction": flags.DEFINE_float("test_fraction", None, "folders: seeded test fraction."),
    "seed": flags.DEFINE_integer("seed", None, "mpii, folders: seed of the seeded split."),
    "include_test": flags.DEFINE_bool("include_test", None, "mpii: also the test images."),
    "classes": flags.DEFINE_list("classes", None, "folders: class names in label order."),
}


def _check_paths() -> dict:
    """Exits 2 for a missing path; returns the reader options that were given."""
    for holder in (_DATASET, _DATA_DIR, _OUTPUT_DIR):
        if not holder.value:
            cli.fail(f"--{holder.name} is required")
    data_dir = os.path.expanduser(_DATA_DIR.value)
    if not os.path.isdir(data_dir):
        cli.fail(f"--data_dir={_DATA_DIR.value}: not a folder; pass the dataset's folder")
    output_dir = os.path.expanduser(_OUTPUT_DIR.value)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        cli.fail(f"--output_dir={_OUTPUT_DIR.value}: is a file; pass a folder")
    options = {}
    for name, holder in {**_READER_FILES, **_READER_DIRS, **_READER_OTHER}.items():
        if holder.value is None:
            continue
        path = os.path.expanduser(str(holder.value))
        if name in _READER_FILES and not os.path.isfile(path):
            cli.fail(f"--{name}={holder.value}: file not found; check the path")
        if name in _READER_DIRS and not os.path.isdir(path):
            cli.fail(f"--{name}={holder.value}: folder not found; check the path")
        options[name] = path if name in _READER_FILES or name in _READER_DIRS else holder.value
    return options


def _check_applicable(dataset: str, options: dict) -> None:
    """Exits 2 when a reader option or --split does not apply to --dataset."""
    import inspect

    from keras_attnpool.data.datasets import get_reader

    accepted = inspect.signature(get_reader(dataset)).parameters
    for name in options:
        if name not in accepted:
            cli.fail(f"--{name} does not apply to --dataset={dataset}; remove it")
    if "split" not in accepted and flags.FLAGS["split"].present:
        cli.fail(f"--split applies only to hmdb51 and ucf101, not --dataset={dataset}")


def _print_summary(manifest: dict, output_dir: str) -> None:
    run = manifest["this_run"]
    if run["nothing_to_do"]:
        print(f"Nothing to do: {output_dir} already holds every shard and the manifest.")
    elif run.get("manifest_rewritten"):
        print(f"Nothing to convert: {output_dir} already holds every shard; manifest.json "
              "rewritten, as the dataset's skipped entries or counts changed.")
    else:
        print(f"Prepared {manifest['dataset']} into {output_dir}: {run['shards_written']} "
              f"shards written ({run['shards_reused']} kept from an earlier run) in "
              f"{run['convert_seconds']:.1f} s, {run['frames_per_second']:.0f} frames/s "
              f"with {manifest['run']['workers']} workers.")
    for split, row in manifest["accounting"].items():
        print(f"  {split}: {row['records']} records of {row['listed']} listed ("
              f"{row['skipped']} skipped when read, {row['failed']} failed to decode), "
              f"{len(manifest['shards'].get(split, []))} shards, "
              f"{manifest['num_frames'].get(split, 0)} frames")
    if manifest["unassigned"]:
        print(f"  {manifest['unassigned']} lines of the dataset's files name no split "
              "(malformed; listed in skipped)")
    for split, names in manifest["empty_classes"].items():
        if names:
            print(f"  {split}: no records for {len(names)} classes: {', '.join(names)}")
    skipped = manifest["skipped"]
    if skipped:
        print(f"  skipped: {len(skipped)} (listed in manifest.json with reasons), first ones:")
        for entry in skipped[:10]:
            print(f"    {entry['path']}: {entry['reason']}")
    print(f"Manifest: {os.path.join(output_dir, 'manifest.json')}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags look like --workers=4")
    options = _check_paths()
    dataset = _DATASET.value.lower()

    from keras_attnpool.data.datasets import DatasetError
    from keras_attnpool.data.prepare.accounting import not_ok_message
    from keras_attnpool.data.prepare.output import OutputDirError
    from keras_attnpool.data.prepare.run import PrepareError, prepare_dataset

    _check_applicable(dataset, options)
    logging.set_verbosity(logging.INFO)
    start = time.perf_counter()
    try:
        manifest = prepare_dataset(
            dataset, os.path.expanduser(_DATA_DIR.value),
            os.path.expanduser(_OUTPUT_DIR.value), split=_SPLIT.value,
            workers=_WORKERS.value, on_error=_ON_ERROR.value, short_side=_SHORT_SIDE.value,
            jpeg_quality=_JPEG_QUALITY.value, shard_size=_SHARD_SIZE.value,
            frame_stride=_FRAME_STRIDE.value, max_frames=_MAX_FRAMES.value,
            max_failure_fraction=_MAX_FAILURE_FRACTION.value, overwrite=_OVERWRITE.value,
            **options)
    except (DatasetError, OutputDirError, ValueError) as error:
        cli.fail(str(error), 2)
    except PrepareError as error:
        cli.fail(f"{error} (finished shards are kept: rerun to resume)", 1)
    except KeyboardInterrupt:
        cli.fail("interrupted; finished shards are kept, rerun the same command to finish", 130)
    _print_summary(manifest, os.path.abspath(os.path.expanduser(_OUTPUT_DIR.value)))
    print(f"Total {time.perf_counter() - start:.1f} s.")
    if not manifest["ok"]:
        cli.fail(not_ok_message(manifest, "fix those files and rerun with --overwrite"), 1)


if __name__ == "__main__":
    cli.run(main)
