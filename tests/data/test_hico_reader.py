"""HICO reader on a miniature `anno.mat` with 1 / -1 / 0 / NaN values."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.io  # noqa: E402

from keras_attnpool.data.datasets import DatasetError, read_hico  # noqa: E402

NAN = float("nan")
ACTIONS = [("airplane", "board"), ("bicycle", "ride"), ("bicycle", "no_interaction"),
           ("cup", "hold")]
# Columns are images (anno is classes x images, as in anno.mat).
TRAIN = {"HICO_train2015_00000001.jpg": [1, -1, 0, NAN],
         "HICO_train2015_00000002.jpg": [NAN, 1, -1, 0],
         "HICO_train2015_00000003.jpg": [-1, -1, NAN, 1]}
TEST = {"HICO_test2015_00000001.jpg": [0, NAN, 1, -1],
        "HICO_test2015_00000002.jpg": [NAN, NAN, NAN, 1]}


def cell(names):
    out = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        out[i, 0] = name
    return out


def anno(train=TRAIN, test=TEST, actions=ACTIONS):
    list_action = np.zeros((len(actions), 1), dtype=[("nname", object), ("vname", object),
                                                     ("vname_ing", object)])
    for i, (nname, vname) in enumerate(actions):
        list_action[i, 0] = (nname, vname, vname + "ing")
    return {"anno_train": np.array(list(train.values()), dtype=np.float64).T,
            "anno_test": np.array(list(test.values()), dtype=np.float64).T,
            "list_train": cell(list(train)), "list_test": cell(list(test)),
            "list_action": list_action}


def make_tree(root, contents, images):
    scipy.io.savemat(root / "anno.mat", contents)
    for folder, names in images.items():
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / "images" / folder / name).write_bytes(b"\xff\xd8 jpeg bytes")
    return root


@pytest.fixture
def hico(tmp_path):
    return make_tree(tmp_path, anno(), {"train2015": TRAIN, "test2015": TEST})


def test_multi_label_values_are_kept(hico):
    spec = read_hico(str(hico), on_error="fail")
    assert spec.multi_label
    assert spec.classes == ["board airplane", "ride bicycle", "no_interaction bicycle",
                            "hold cup"]
    assert spec.counts() == {"train": 3, "test": 2}
    first = spec.samples["train"][0]
    assert first.video_id == "train2015/HICO_train2015_00000001.jpg"
    assert first.path == str(hico / "images" / "train2015" / "HICO_train2015_00000001.jpg")
    assert first.label.dtype == np.float32 and first.label.shape == (4,)
    assert first.label[2] == 0 and np.isnan(first.label[3])   # ambiguous != unknown
    assert not first.label.flags.writeable
    np.testing.assert_array_equal(spec.labels("train"), [[1, -1, 0, NAN], [NAN, 1, -1, 0],
                                                         [-1, -1, NAN, 1]])
    np.testing.assert_array_equal(spec.labels("test"), [[0, NAN, 1, -1], [NAN, NAN, NAN, 1]])
    assert spec.class_counts("train") == {"board airplane": 1, "ride bicycle": 1,
                                          "no_interaction bicycle": 0, "hold cup": 1}
    assert spec.skipped == []


def test_bad_images_are_skipped_with_reasons(tmp_path):
    train = dict(TRAIN)
    train["HICO_train2015_00000004.jpg"] = [1, 2, NAN, NAN]     # column 4: bad value
    train["../secret.jpg"] = [1, 1, 1, 1]                      # column 5: escapes
    train["HICO_train2015_00000006.jpg"] = [1, NAN, NAN, NAN]  # column 6: file missing
    contents = anno(train=train)
    # Column 7 repeats image 1 with the same labels: a duplicate.
    contents["anno_train"] = np.concatenate([contents["anno_train"],
                                             contents["anno_train"][:, :1]], axis=1)
    contents["list_train"] = cell(list(train) + ["HICO_train2015_00000001.jpg"])
    root = make_tree(tmp_path, contents, {
        "train2015": [n for n in train if n not in ("../secret.jpg",
                                                    "HICO_train2015_00000006.jpg")],
        "test2015": TEST})
    spec = read_hico(str(root))
    assert spec.counts() == {"train": 3, "test": 2}
    got = sorted((s.line, s.reason.split(" (")[0]) for s in spec.skipped)
    assert got == [
        (4, "anno_train value 2.0 for class 2 is not 1, -1, 0 or NaN"),
        (5, "image name in list_train is empty or escapes the images folder"),
        (6, "file not found in " + str(root / "images" / "train2015")),
        (7, "duplicate entry"),
    ]
    assert {s.source for s in spec.skipped} == {str(root / "anno.mat")}
    with pytest.raises(DatasetError, match=r"anno.mat, line 4: anno_train value 2.0"):
        read_hico(str(root), on_error="fail")


@pytest.mark.parametrize("change,match", [
    (lambda c: c.pop("list_action"), r"missing variable\(s\) \['list_action'\]"),
    (lambda c: c.update(anno_test=c["anno_test"][:3]), r"anno_test has shape \(3, 2\)"),
    (lambda c: c.update(list_train=cell(["a.jpg"])), r"anno_train has shape \(4, 3\), "
                                                     r"expected \(4, 1\)"),
    (lambda c: c.update(list_action=np.zeros((4, 1), dtype=[("nname", object)])),
     r"list_action\(1\) has no vname"),
])
def test_wrong_mat_raises(tmp_path, change, match):
    contents = anno()
    change(contents)
    scipy.io.savemat(tmp_path / "anno.mat", contents)
    with pytest.raises(DatasetError, match=match):
        read_hico(str(tmp_path))
