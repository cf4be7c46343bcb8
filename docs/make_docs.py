r"""Regenerates the README's attention pictures and ablation tables from the commands.

    python docs/make_docs.py                  # ablation + resolution + pictures, 5 seeds
                                              # (finished runs in --workdir are reused)
    python docs/make_docs.py --skip=resolution
    python docs/make_docs.py --readme_only    # only rewrite the README from docs/

Steps: `benchmarks/ablate.py` -> docs/ablation_demo.md and docs/ablation_curves.png,
`benchmarks/resolution.py` -> docs/resolution_demo.md, `training/visualize.py` on the
ablation's rank-1 attention run and a pose-regularised run (seed 1, from scratch; trained
here when missing) for a demo test video and one of its frames ->
docs/attention_*.png (paletted, a few tens of KB), then the README text between
`<!-- attention-pictures:start/end -->` and `<!-- ablation:start/end -->` (nothing else).
docs/ablation_notes.md (written by hand: what the tables say) is placed under the tables.
docs/benchmark_times.md lists how long the steps took.
"""

import os
import re
import subprocess
import sys
import tempfile
from typing import List

from absl import flags

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
# benchmarks/ablation.py (flag-free) names the runs that the benchmark scripts train.
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from keras_attnpool import cli  # noqa: E402

_README_ONLY = flags.DEFINE_bool("readme_only", False, "Only rewrite the README from docs/.")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join(ROOT, "workdir", "ablate_demo"),
                               "Root of the ablation's runs (reused when finished).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Demo data (default: the default).")
_WORKERS = flags.DEFINE_integer("workers", None, "Prepare's processes.", lower_bound=0)
_SKIP = flags.DEFINE_multi_enum("skip", [], ["ablation", "resolution", "pictures"],
                                "Steps to leave out (their docs/ files are used as they are).")

PICTURES = {  # docs file -> (variant, input kind)
    "attention_video.png": ("rank1", "video"),
    "attention_image.png": ("rank1", "image"),
    "attention_pose_video.png": ("pose", "video"),
}
DEMO_CLASS = "digit_3"
SEEDS = "1,2,3,4,5"  # ablate.py's default


def _run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)


def _test_video(data_dir: str, class_name: str = DEMO_CLASS) -> str:
    """The first test video of a class (split 1 file: '<video> 2' marks a test video)."""
    split = os.path.join(data_dir, "testTrainMulti_7030_splits", f"{class_name}_test_split1.txt")
    with open(split) as f:
        tests = [line.split()[0] for line in f if line.split()[-1:] == ["2"]]
    return os.path.join(data_dir, class_name, tests[0])


def _middle_frame_png(video: str, folder: str) -> str:
    from PIL import Image

    from keras_attnpool.data.video import decode_video

    frames = decode_video(video, short_side=None).frames
    path = os.path.join(folder, os.path.splitext(os.path.basename(video))[0] + "_frame.png")
    Image.fromarray(frames[len(frames) // 2]).save(path)
    return path


def make_pictures(root: str, data_dir: str, base: dict) -> None:
    """Draws the README's pictures with training/visualize.py and shrinks them."""
    from PIL import Image

    import ablation

    video = _test_video(data_dir)
    with tempfile.TemporaryDirectory() as folder:
        image = _middle_frame_png(video, folder)
        for name, (variant, kind) in PICTURES.items():
            config = ablation.variant_config(base, variant, 1, root)
            ablation.train_and_score(config)  # reused when ablate.py trained it
            workdir = config.workdir
            out = os.path.join(folder, name)
            _run("training/visualize.py", f"--workdir={workdir}", f"--out={out}",
                 "--frames=4", f"--classes={DEMO_CLASS}", "--inputs",
                 video if kind == "video" else image)
            drawn = os.path.join(out, os.listdir(out)[0])
            Image.open(drawn).convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT).save(
                os.path.join(DOCS, name), optimize=True)


def _read(name: str) -> str:
    path = os.path.join(DOCS, name)
    return open(path).read().strip() if os.path.exists(path) else f"(run docs/make_docs.py: "\
        f"{name} is missing)"


def pictures_section() -> List[str]:
    return [
        "### Where the model looks (`python training/visualize.py`)", "",
        "```bash",
        "python training/visualize.py --workdir=workdir/demo_attention --out=pictures \\",
        "    --inputs ~/.keras_attnpool/demo/digit_3/<a test video>.avi photo.png",
        "```", "",
        "Each picture shows the input (as the test protocol prepares it) beside the maps of "
        "the trained head's own `attention_maps`: the class-agnostic **bottom-up** saliency, "
        "the **top-down** map of the predicted class (and of any `--classes`), and their "
        "**product**, whose mean over positions is the class's logit. Brighter is larger "
        "(each map min-max normalised); the top-3 labels are written on top. A video gives "
        "one strip of uniformly spaced frames. The same pictures go to TensorBoard during "
        "training (`logs/train`, tag `attention`). Below: the demo's rank-1 attention model "
        "and the pose-regularised one (`benchmarks/ablate.py`'s seed-1 runs) on a test video "
        f"of a `{DEMO_CLASS}`, and one of its frames given as an image (`--classes="
        f"{DEMO_CLASS}`: the true class's maps are drawn too when the prediction differs).",
        "",
        "![attention strip of a demo test video](docs/attention_video.png)", "",
        "![attention of one frame given as an image](docs/attention_image.png)", "",
        "![pose-regularised attention strip](docs/attention_pose_video.png)",
    ]


def ablation_section() -> List[str]:
    return [
        "### The paper's ablation (`python benchmarks/ablate.py`)", "",
        _read("ablation_demo.md"), "",
        "![evaluation curves of the ablation's rows](docs/ablation_curves.png)", "",
        "### Feature resolution (`python benchmarks/resolution.py`)", "",
        _read("resolution_demo.md"), "",
        _read("ablation_notes.md"), "",
        "Regenerate both tables and the pictures with `python docs/make_docs.py`.",
    ]


def replace_between(text: str, marker: str, lines: List[str]) -> str:
    """`text` with what lies between `<!-- marker:start -->` and `<!-- marker:end -->`
    replaced by `lines`."""
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- {marker}:start/end --> markers")
    return pattern.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text,
                       count=1)


def write_readme() -> None:
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        text = f.read()
    text = replace_between(text, "attention-pictures", pictures_section())
    text = replace_between(text, "ablation", ablation_section())
    with open(path, "w") as f:
        f.write(text)
    print(f"Rewrote the attention-pictures and ablation sections of {path}")


def main(argv) -> None:
    del argv
    if not _README_ONLY.value:
        import ablation
        from keras_attnpool.data.synthetic import demo

        data_dir = os.path.abspath(_DATA_DIR.value or demo.default_root())
        # The same overrides go to the benchmarks as flags of the same names and name the
        # runs the pictures are drawn from (a run's workdir name hashes its config).
        overrides = {"data_dir": data_dir, "workers": _WORKERS.value}
        common = [f"--workdir={_WORKDIR.value}", f"--seeds={SEEDS}"] + [
            f"--{name}={value}" for name, value in overrides.items() if value is not None]
        if "ablation" not in _SKIP.value:
            _run("benchmarks/ablate.py", *common, "--out=docs/ablation_demo.md",
                 "--curves=docs/ablation_curves.png")
        if "resolution" not in _SKIP.value:
            _run("benchmarks/resolution.py", *common, "--out=docs/resolution_demo.md")
        if "pictures" not in _SKIP.value:
            make_pictures(_WORKDIR.value, data_dir, ablation.base_overrides(**overrides))
    write_readme()


if __name__ == "__main__":
    cli.run(main)
