"""Dataset sources: the generic folder source and subject selection."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rrlsrn.data.sources import default_split, list_volumes


def write_nifti(path, shape=(8, 8, 4)):
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(path))


def test_folder_source_pairs_volumes_with_masks(tmp_path):
    for name in ("b.nii.gz", "a.nii", "a_mask.nii.gz", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            write_nifti(tmp_path / name)
    volumes = list_volumes({"source": "folder", "path": str(tmp_path)})
    assert list(volumes) == ["a", "b"]  # sorted, masks are not volumes, text ignored
    assert volumes["a"].mask == tmp_path / "a_mask.nii.gz"
    assert volumes["b"].mask is None and volumes["b"].path == tmp_path / "b.nii.gz"
    # a user's own folder is a test set unless the config says otherwise
    assert default_split({"source": "folder"}, volumes) == {"a": "test", "b": "test"}


def test_folder_source_errors_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: put your HR NIfTI"):
        list_volumes({"source": "folder", "path": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match="holds no NIfTI volume"):
        list_volumes({"source": "folder", "path": str(tmp_path)})


def test_folder_source_takes_only_nifti_names(tmp_path):
    write_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "b.nii.gz.part").write_bytes(b"half a download")
    (tmp_path / "notes.nii.txt").write_text("x")
    assert list(list_volumes({"source": "folder", "path": str(tmp_path)})) == ["a"]


@pytest.mark.parametrize("name", ["b.nii.gz.part", "notes.nii.txt"])
def test_folder_of_no_nifti_names_the_files_it_ignored(tmp_path, name):
    (tmp_path / name).write_text("x")
    with pytest.raises(FileNotFoundError, match=rf"holds no NIfTI volume.*ignored: {name}"):
        list_volumes({"source": "folder", "path": str(tmp_path)})


def test_folder_with_unreadable_nifti_is_refused_naming_every_bad_file(tmp_path):
    write_nifti(tmp_path / "good.nii.gz")
    write_nifti(tmp_path / "good_mask.nii.gz")
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "c.nii").write_bytes(b"not a header" * 40)
    with pytest.raises(ValueError, match="2 unreadable NIfTI files") as info:
        list_volumes({"source": "folder", "path": str(tmp_path)})
    message = str(info.value)
    assert "a.nii.gz (empty file)" in message and "c.nii (" in message
    assert "good" not in message.replace(str(tmp_path), "")
    # a mended file is read again (the header check is cached by size and time)
    write_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "c.nii").unlink()
    assert list(list_volumes({"source": "folder", "path": str(tmp_path)})) == ["a", "good"]


def test_unknown_subjects_and_collections_are_named(tmp_path):
    write_nifti(tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        list_volumes({"source": "folder", "path": str(tmp_path), "subjects": ["zz"]})
    with pytest.raises(ValueError, match="'neonatal'"):
        list_volumes({"source": "embedded", "collection": "neonatal"})


def test_namic_missing_folder_says_what_to_put_where_and_why(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        list_volumes({"source": "namic", "path": str(tmp_path)})
    message = str(info.value)
    assert f"{tmp_path}/case01011-t1w.nrrd" in message and "cannot be downloaded" in message


def test_namic_cases_read_from_nrrd_with_spacing(tmp_path):
    import nrrd

    from rrlsrn.io import load_volume

    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.9, 0.9, 1.4]),
        "space origin": [1.0, 2.0, 3.0],
    }
    nrrd.write(str(tmp_path / "case01011-t1w.nrrd"), data, header)
    nrrd.write(str(tmp_path / "case01044-t1w.nrrd"), data, header)
    volumes = list_volumes({"source": "namic", "path": str(tmp_path)})
    assert list(volumes) == ["case01011", "case01044"]
    # the paper tests on case01011..case01034 and trains on the rest
    split = default_split({"source": "namic", "split_policy": "paper"}, volumes)
    assert split == {"case01011": "test", "case01044": "train"}
    volume, affine, zooms = load_volume(volumes["case01011"].path)
    np.testing.assert_array_equal(volume, data)
    assert zooms == pytest.approx((0.9, 0.9, 1.4))
    np.testing.assert_allclose(affine[:3, 3], [1.0, 2.0, 3.0])


def test_fetal_bids_folder_finds_stacks_and_masks(tmp_path):
    anat = tmp_path / "sub-07" / "anat"
    masks = tmp_path / "derivatives" / "masks" / "sub-07" / "anat"
    anat.mkdir(parents=True)
    masks.mkdir(parents=True)
    for run in (1, 2):
        write_nifti(anat / f"sub-07_run-{run}_T2w.nii.gz")
    write_nifti(masks / "sub-07_run-2_T2w_desc-brain_mask.nii.gz")
    volumes = list_volumes({"source": "fetal", "path": str(tmp_path)})
    assert list(volumes) == ["sub-07_run-1", "sub-07_run-2"]
    assert volumes["sub-07_run-1"].mask is None
    assert volumes["sub-07_run-2"].mask == masks / "sub-07_run-2_T2w_desc-brain_mask.nii.gz"
    assert {v.person for v in volumes.values()} == {"sub-07"}
    with pytest.raises(FileNotFoundError, match="BIDS folder .* does not exist"):
        list_volumes({"source": "fetal", "path": str(tmp_path / "missing")})
    (anat / "sub-07_run-3_T2w.nii.gz.part").write_bytes(b"")  # not a stack
    assert len(list_volumes({"source": "fetal", "path": str(tmp_path)})) == 2
    (masks / "sub-07_run-1_T2w_desc-brain_mask.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="sub-07_run-1_T2w_desc-brain_mask.nii.gz"):
        list_volumes({"source": "fetal", "path": str(tmp_path)})


def test_kirby21_splits_through_the_pipeline():
    from rrlsrn import pipeline

    config = {"datasets": {"k": {"source": "kirby21", "path": "/nonexistent"}}}
    split = pipeline.dataset_split(config, "k")
    # subject-disjoint by default: the test subjects' rescans are excluded, not trained on
    assert [s for s, r in split.items() if r == "test"] == [f"KKI2009-0{i}" for i in range(1, 6)]
    assert {
        split[s] for s in ("KKI2009-25", "KKI2009-37", "KKI2009-22", "KKI2009-11", "KKI2009-31")
    } == {"excluded"}
    # the paper's split is allowed only when asked for, although it leaks subjects
    config["datasets"]["k"]["split_policy"] = "paper"
    paper = pipeline.dataset_split(config, "k")
    assert paper["KKI2009-25"] == "train" and paper["KKI2009-01"] == "test"
    config["datasets"]["k"] = {"source": "kirby21", "split": {"KKI2009-25": "train"}}
    with pytest.raises(ValueError, match="same person.*849"):
        pipeline.dataset_split(config, "k")
